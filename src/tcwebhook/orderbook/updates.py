"""What an event writes to the order book, from its typed model; and the typed objects reads need.

On the path that answers Tradecloud (``write_of_envelope``) only attributes of the model the
receiver has just validated are read: ids, stamps, a status, a number. Nothing is serialised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import structlog

from tcwebhook.contract.kinds import EventKind
from tcwebhook.contract.models import (
    OrderDocumentsEvent,
    OrderWebhook,
    ShipmentWebhook,
    TradecloudModel,
)
from tcwebhook.contract.parse import parse_stored
from tcwebhook.errors import InvalidBody
from tcwebhook.orderbook.book import documents_of, order_number, stamp, update_of
from tcwebhook.orderbook.sql import BookWrite

log = structlog.get_logger(__name__)


def model_data(model: TradecloudModel) -> dict[str, Any]:
    """A model as wire-named data: exact decimals, absent fields left out."""
    data: dict[str, Any] = model.model_dump(mode="python", by_alias=True, exclude_none=True)
    return data


def write_of_envelope(kind: EventKind, envelope: TradecloudModel) -> BookWrite | None:
    """The book write of a parsed webhook (the receiver's parse, reused); None when it has none."""
    if isinstance(envelope, ShipmentWebhook):
        shipment = envelope.event
        if not shipment.id:
            return None
        last = shipment.meta.last_updated_at if shipment.meta is not None else None
        number = shipment.supplier_shipment.shipment_number if shipment.supplier_shipment is not None else None
        return BookWrite(
            key=f"shipment:{shipment.id}",
            kind="shipment",
            object_id=shipment.id,
            source="event",
            header_stamp=stamp(last),
            number=number,
            status=shipment.effective_process_status,
            last_updated_at=last,
        )
    if not isinstance(envelope, OrderWebhook):
        return None  # a GET trigger: the object comes when it is fetched
    event = envelope.event
    if not event.order_id:
        return None
    if isinstance(event, OrderDocumentsEvent):
        data = model_data(event)
        return BookWrite(
            key=f"order:{event.order_id}",
            kind="order",
            object_id=event.order_id,
            source="documents",
            header_stamp=stamp(None),
            number=order_number(data),
            status=None,
            last_updated_at=None,
            documents=BookWrite.of_documents(documents_of(data)),
        )
    lines: list[tuple[str, str]] = []
    for line in event.lines or ():
        key = line.id or (
            f"position:{line.buyer_line.position}" if line.buyer_line is not None and line.buyer_line.position else None
        )
        if key:
            lines.append((key, stamp(line.last_updated_at)))
    buyer = event.buyer_order
    return BookWrite(
        key=f"order:{event.order_id}",
        kind="order",
        object_id=event.order_id,
        source="event",
        header_stamp=stamp(event.last_updated_at, event.version),
        number=buyer.purchase_order_number if buyer is not None else None,
        status=event.status.process_status if event.status is not None else None,
        last_updated_at=event.last_updated_at,
        lines=tuple(lines),
    )


def fetched_envelope(kind: EventKind, obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """A fetched API object in envelope shape (``orderEvent`` / ``shipment``), None for a bare trigger."""
    from tcwebhook.formats.typed import api_order_data, api_shipment_data

    if "id" not in obj:
        return None
    if kind is EventKind.ORDER_FETCH:
        return {"orderEvent": api_order_data(dict(obj))}
    return {"shipment": api_shipment_data(dict(obj))}


def _fetch_object(kind: EventKind, body: bytes) -> dict[str, Any] | None:
    obj = orjson.loads(body) if body else {}
    return fetched_envelope(kind, obj) if isinstance(obj, dict) else None


def write_of_body(kind: EventKind, content_type: str, body: bytes) -> BookWrite | None:
    """The write of a stored body (events not stored by the receiver: reconciliation's fetches,
    replays, tests). None when it has none or cannot be read: the event is kept whatever its book
    says, so this logs and never raises."""
    try:
        if kind.is_fetch:
            data = _fetch_object(kind, body)
            found = None if data is None else update_of(kind, data)
            return None if found is None else BookWrite.of(found)
        return write_of_envelope(kind, parse_stored(kind, content_type, body).envelope)
    except (InvalidBody, orjson.JSONDecodeError, ValueError) as exc:
        log.debug("orderbook.unreadable", kind=kind.value, error=str(exc)[:200])
        return None


def fetched_write(kind: EventKind, obj: Mapping[str, Any]) -> BookWrite | None:
    """The write of an object fetched while delivering (not stored as an event: its data is kept)."""
    data = fetched_envelope(kind, obj)
    found = None if data is None else update_of(kind, data)
    return None if found is None else BookWrite.of(found, keep_data=True)


def objects_of(rows: Iterable[Sequence[Any]]) -> dict[int, tuple[str, Mapping[str, Any]]]:
    """seq -> (kind, the typed order or shipment object) for rows of ``sql.bodies_query``."""
    out: dict[int, tuple[str, Mapping[str, Any]]] = {}
    for seq, kind, content_type, body in rows:
        obj = object_of_body(kind, content_type, bytes(body))
        if obj is not None:
            out[int(seq)] = (kind, obj)
    return out


def object_of_body(kind: str, content_type: str, body: bytes) -> dict[str, Any] | None:
    """The typed order or shipment object a stored event holds (for reading the book), or None."""
    from tcwebhook.formats.typed import order_object, shipment_object

    try:
        event_kind = EventKind(kind)
        if event_kind.is_fetch:
            data = _fetch_object(event_kind, body)
        else:
            data = model_data(parse_stored(event_kind, content_type, body).envelope)
    except (InvalidBody, orjson.JSONDecodeError, ValueError) as exc:
        log.debug("orderbook.unreadable", kind=kind, error=str(exc)[:200])
        return None
    if data is None:
        return None
    return order_object(data) or shipment_object(data)
