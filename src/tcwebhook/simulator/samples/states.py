"""The orders and shipments in flight, and the state machine that moves their lines along."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from tcwebhook.simulator.samples.families import Json

# Per order event: line process status, in-progress sub-status, logistics status (None: keep;
# a process status of None keeps the in-progress sub-status too).
LINE_STATE: Mapping[str, tuple[str | None, str | None, str | None]] = {
    "OrderIssuedByBuyer": ("Issued", None, "Open"),
    "OrderLinesIssuedByBuyer": ("Issued", None, "Open"),
    "OrderLinesReissuedByBuyer": ("InProgress", "ReissuedRejectedLine", "Open"),
    "OrderLinesUpdatedByBuyer": ("Issued", None, None),
    "OrderLinesAcceptedBySupplier": ("Confirmed", None, None),
    "OrderLinesRejectedBySupplier": ("Rejected", None, None),
    "OrderLinesConfirmedByBuyer": ("Confirmed", None, None),
    "OrderLinesConfirmedBySupplier": ("Confirmed", None, None),
    "OrderChangesProposedBySupplier": ("InProgress", "OpenSupplierProposal", None),
    "OrderChangesProposalApprovedByBuyer": ("Confirmed", None, None),
    "OrderChangesProposalRejectedByBuyer": ("InProgress", "RejectedSupplierProposal", None),
    "OrderLinesUpdatedBySupplier": (None, None, None),
    "OrderLinesItemDetailsChanged": (None, None, None),
    "OrderLinesItemDetailsChangedBySupplier": (None, None, None),
    "OrderLinesReopenRequestedByBuyer": ("InProgress", "OpenBuyerReopenRequest", None),
    "OrderLinesReopenRequestRevertedByBuyer": ("Confirmed", None, None),
    "OrderLinesReopenRequestApprovedBySupplier": ("Confirmed", None, None),
    "OrderLinesReopenRequestRejectedBySupplier": ("Confirmed", None, None),
    "OrderLinesReopenRequestedBySupplier": ("InProgress", "OpenSupplierReopenRequest", None),
    "OrderLinesReopenRequestRevertedBySupplier": ("Confirmed", None, None),
    "OrderLinesReopenRequestApprovedByBuyer": ("Confirmed", None, None),
    "OrderLinesReopenRequestRejectedByBuyer": ("Confirmed", None, None),
    "OrderLinesReconfirmationRequestedByBuyer": (
        "InProgress",
        "OpenBuyerReconfirmationRequest",
        None,
    ),
    "OrderLinesReconfirmedBySupplier": ("Confirmed", None, None),
    "OrderLinesCancelledByBuyer": ("Cancelled", None, "Cancelled"),
    "CancelledOrderLinesRevertedByBuyer": ("InProgress", "RevertedCancelledLine", "Open"),
    "OrderLinesCompletedByBuyer": ("Completed", None, "Delivered"),
    "CompletedOrderLinesRevertedByBuyer": ("InProgress", "RevertedCompletedLine", None),
    "OrderLinesMarkedAsOpenByBuyer": ("Confirmed", None, "Open"),
    "OrderLinesMarkedAsOpenBySupplier": ("Confirmed", None, "Open"),
    "OrderLinesShippedByBuyer": ("Confirmed", None, "Shipped"),
    "OrderLinesMarkedAsDeliveredByBuyer": ("Confirmed", None, "Delivered"),
    "OrderLinesMarkedAsDeliveredBySupplier": ("Confirmed", None, "Delivered"),
    "OrderLinesDeliveryHistoryAppendedByBuyer": ("Confirmed", None, "Delivered"),
    "OrderLinesDeliveryHistorySetByBuyer": ("Confirmed", None, "Delivered"),
    "OrderLinesDeliveryScheduleLogisticsUpdatedByBuyer": ("Confirmed", None, "ReadyToShip"),
    "OrderLinesDeliveryScheduleLogisticsUpdatedBySupplier": ("Confirmed", None, "Produced"),
    "OrderLinesShipmentRescheduleRequestedBySupplier": (
        "InProgress",
        "OpenSupplierShipmentRescheduleRequest",
        None,
    ),
    "OrderLinesShipmentRescheduleApprovedByBuyer": ("Confirmed", None, None),
    "OrderLinesShipmentRescheduleRejectedByBuyer": ("Confirmed", None, None),
}
# Events about the whole order that leave line states alone and carry every line.
WHOLE_ORDER = frozenset(
    {
        "OrderIssuedByBuyer",
        "OrderContactReassignedByBuyer",
        "OrderContactReassignedBySupplier",
        "OrderResentByBuyer",
        "OrderResentBySupplier",
    }
)
PROCESS_RANK = ("Issued", "InProgress", "Rejected", "Confirmed", "Cancelled", "Completed")
LOGISTICS_RANK = ("Open", "Produced", "ReadyToShip", "Shipped", "Delivered", "Cancelled")

ITEMS = (
    ("HH-600-45", "Hose 600mm DN45", "S-99812", "4009 42 00", 1.35),
    ("FT-12", "Fitting 12mm", "S-10012", "7307 19 10", 0.04),
    ("BR-220", "Bracket 220", "S-55120", "7326 90 98", 0.62),
    ("VL-80", "Ball valve DN80", "S-80800", "8481 80 81", 7.9),
    ("GS-3015", "Gasket set 30x15", "S-30150", "4016 93 00", 0.11),
    ("MT-4KW", "Motor 4 kW IE3", "S-44000", "8501 52 30", 31.0),
)
CITIES = (
    ("Rotterdam", "NL", "3011 AA"),
    ("Berlin", "DE", "10115"),
    ("Antwerpen", "BE", "2000"),
    ("Lyon", "FR", "69002"),
    ("Milano", "IT", "20121"),
)


def iso_time(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def money(value: float) -> Json:
    return {"priceInTransactionCurrency": {"value": round(value, 2), "currencyIso": "EUR"}}


def price_block(net: float, gross: float | None = None) -> Json:
    prices: Json = {}
    if gross is not None:
        prices["grossPrice"] = money(gross)
        prices["discountPercentage"] = round(100 * (1 - net / gross), 2)
    prices["netPrice"] = money(net)
    prices["priceUnitOfMeasureIso"] = "PCE"
    prices["priceUnitQuantity"] = 1
    return prices


@dataclass(slots=True)
class Delivery:
    position: str
    when: date
    quantity: int
    status: str = "Open"


@dataclass(slots=True)
class Line:
    line_id: str
    position: str
    item: tuple[str, str, str, str, float]
    schedule: list[Delivery]
    net_price: float
    gross_price: float | None
    sales_order_position: str
    process_status: str = "Issued"
    in_progress_status: str | None = None
    logistics_status: str = "Open"
    last_updated_at: str = ""
    delivered: list[Delivery] = field(default_factory=list)


@dataclass(slots=True)
class Order:
    order_id: str
    purchase_order_number: str
    single_delivery: bool
    buyer_company_id: str
    supplier_company_id: str
    buyer_user_id: str
    supplier_user_id: str
    trace_id: str
    sales_order_number: str
    lines: list[Line]
    version: int = 0
    last_updated_at: str = ""


@dataclass(slots=True)
class ShipmentLine:
    order: Order
    line: Line
    delivery: Delivery
    quantity: int
    advice_position: str
    last_updated_at: str


@dataclass(slots=True)
class Shipment:
    shipment_id: str
    number: str
    advice_number: str
    supplier_company_id: str
    buyer_company_id: str
    supplier_user_id: str
    trace_id: str
    lines: list[ShipmentLine]
    departure: str
    city: tuple[str, str, str]
    status: str = "Issued"
    reason: str | None = None
    supplier_documents: list[Json] = field(default_factory=list)
    buyer_documents: list[Json] = field(default_factory=list)
    tracking_number: str = ""
    last_updated_at: str = ""


def advance_line(event_name: str, line: Line, rng: random.Random) -> None:
    """The state machine: what ``event_name`` does to a line's statuses and delivery schedule."""
    state = LINE_STATE.get(event_name)
    if state is None:
        return
    process, in_progress, logistics = state
    if process is not None:
        line.process_status = process
        line.in_progress_status = in_progress
    if logistics is not None:
        line.logistics_status = logistics
    if event_name == "OrderChangesProposalApprovedByBuyer" or event_name.startswith(
        "OrderLinesShipmentRescheduleApproved"
    ):
        for d in line.schedule:
            d.when += timedelta(days=14)
    elif event_name in ("OrderLinesUpdatedByBuyer", "OrderLinesUpdatedBySupplier"):
        line.schedule[-1].quantity += rng.choice((5, 10, 20))
    elif event_name == "OrderLinesDeliveryHistorySetByBuyer":
        line.delivered = [Delivery("01", d.when, d.quantity) for d in line.schedule]
    elif event_name == "OrderLinesDeliveryHistoryAppendedByBuyer":
        d = line.schedule[min(len(line.delivered), len(line.schedule) - 1)]
        line.delivered.append(Delivery(f"{len(line.delivered) + 1:02d}", d.when, d.quantity))
    if logistics in ("Open", "Produced", "ReadyToShip", "Shipped", "Delivered"):
        for d in line.schedule:
            d.status = logistics


def order_status(order: Order) -> Json:
    """The order's statuses: the least advanced of its lines'."""
    process = min((ln.process_status for ln in order.lines), key=PROCESS_RANK.index)
    logistics = min((ln.logistics_status for ln in order.lines), key=LOGISTICS_RANK.index)
    return {"processStatus": process, "logisticsStatus": logistics}
