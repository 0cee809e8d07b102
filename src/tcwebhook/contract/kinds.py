"""Event kinds: the family a webhook call belongs to, used for routing, filters and file names."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    ORDER = "order"  # orderEvent, singleDeliveryOrderEvent or legacy simpleOrderEvent
    ORDER_DOCUMENTS = "order_documents"  # orderDocumentsEvent
    SHIPMENT = "shipment"  # shipment
    ORDER_FETCH = "order_fetch"  # GET webhook: only an orderId (or legacyOrderId)
    SHIPMENT_FETCH = "shipment_fetch"  # GET webhook: only a shipmentId
    # An envelope (eventName, meta) whose event object is none the models know: one Tradecloud
    # added after this version. Kept, never refused; delivered to sinks with accept_unknown.
    UNKNOWN = "unknown"

    @property
    def is_fetch(self) -> bool:
        return self in (EventKind.ORDER_FETCH, EventKind.SHIPMENT_FETCH)


def routing_key(kind: EventKind, *, order_id: str | None, shipment_id: str | None) -> str | None:
    """The per-key FIFO key: events of one order (documents and fetches too) or one shipment."""
    if kind in (EventKind.SHIPMENT, EventKind.SHIPMENT_FETCH):
        return f"shipment:{shipment_id}" if shipment_id else None
    return f"order:{order_id}" if order_id else None
