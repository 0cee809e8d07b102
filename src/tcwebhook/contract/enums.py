"""Documented enumeration values (contract §3.8, §5).

The lists are open: Tradecloud may add values at any time (§8 rule 2), so model fields hold
plain strings. These ``StrEnum`` classes name the values known today and compare equal to
the strings, e.g. ``line.status.process_status == ProcessStatus.CONFIRMED``.
"""

from __future__ import annotations

from enum import StrEnum


class ProcessStatus(StrEnum):
    """Order and line ``status.processStatus``."""

    ISSUED = "Issued"
    IN_PROGRESS = "InProgress"
    CONFIRMED = "Confirmed"
    REJECTED = "Rejected"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"


class LogisticsStatus(StrEnum):
    """Order and line ``status.logisticsStatus``."""

    OPEN = "Open"
    PRODUCED = "Produced"
    READY_TO_SHIP = "ReadyToShip"
    SHIPPED = "Shipped"
    DELIVERED = "Delivered"
    CANCELLED = "Cancelled"


class InProgressStatus(StrEnum):
    """Line ``status.inProgressStatus``, meaningful only while the line is ``InProgress``."""

    OPEN_SUPPLIER_PROPOSAL = "OpenSupplierProposal"
    REJECTED_SUPPLIER_PROPOSAL = "RejectedSupplierProposal"
    REISSUED_REJECTED_LINE = "ReissuedRejectedLine"
    OPEN_BUYER_REOPEN_REQUEST = "OpenBuyerReopenRequest"
    OPEN_SUPPLIER_REOPEN_REQUEST = "OpenSupplierReopenRequest"
    OPEN_BUYER_RECONFIRMATION_REQUEST = "OpenBuyerReconfirmationRequest"
    OPEN_SUPPLIER_SHIPMENT_RESCHEDULE_REQUEST = "OpenSupplierShipmentRescheduleRequest"
    APPROVED_DELIVERY_SCHEDULE = "ApprovedDeliverySchedule"
    REJECTED_DELIVERY_SCHEDULE = "RejectedDeliverySchedule"
    REVERTED_COMPLETED_LINE = "RevertedCompletedLine"
    REVERTED_CANCELLED_LINE = "RevertedCancelledLine"


class ScheduledDeliveryStatus(StrEnum):
    """``status`` of a delivery-schedule line or scheduled delivery."""

    OPEN = "Open"
    PRODUCED = "Produced"
    READY_TO_SHIP = "ReadyToShip"
    SHIPPED = "Shipped"
    DELIVERED = "Delivered"


class RequestStatus(StrEnum):
    """``status`` of a proposal or reopen request (``Proposed`` is the 2020 spelling)."""

    OPEN = "Open"
    APPROVED = "Approved"
    REJECTED = "Rejected"
    CLOSED = "Closed"
    PROPOSED = "Proposed"


class LineType(StrEnum):
    """``lines[].lineType``; ``Item`` when absent."""

    ITEM = "Item"
    SERVICE = "Service"
    CHARGE = "Charge"


class OrderType(StrEnum):
    """``buyerOrder.orderType``; ``Purchase`` when absent."""

    PURCHASE = "Purchase"
    FORECAST = "Forecast"
    RFQ = "RFQ"


class ShipmentProcessStatus(StrEnum):
    """Shipment ``status.processStatus`` (documented as extensible)."""

    ISSUED = "Issued"
    APPROVED = "Approved"
    REJECTED = "Rejected"


class LocationType(StrEnum):
    """Shipment ``location.locationType`` (the Incoterms that use it in parentheses)."""

    AGREED_PLACE = "AgreedPlace"  # EXW, FCA
    PORT_OF_LOADING = "PortOfLoading"  # FAS, FOB
    PORT_OF_DESTINATION = "PortOfDestination"  # CFR, CIF
    PLACE_OF_DESTINATION = "PlaceOfDestination"  # CPT, CIP
    FINAL_DESTINATION = "FinalDestination"  # DAP, DPU, DDP
