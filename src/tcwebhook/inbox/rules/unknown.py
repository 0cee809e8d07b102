"""Events of kind ``unknown`` read again: once this version's models know the event object, the
event takes the kind, ids and key the receiver would have given it, and joins the order book."""

from __future__ import annotations

from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import ContractError
from tcwebhook.inbox.base import NewEvent
from tcwebhook.inbox.ids import updated_micros
from tcwebhook.inbox.rules.intake import keep_book
from tcwebhook.inbox.tx import Tx

_BODY = "SELECT content_type, body FROM events WHERE seq = ?"
_KNOWN = (
    "UPDATE events SET kind = ?, key = ?, order_id = ?, shipment_id = ?, purchase_order_number = ?,"
    " shipment_number = ?, last_updated_at = ?, updated_us = ? WHERE seq = ?"
)
_DELIVERY_KEYS = "UPDATE deliveries SET key = ? WHERE seq = ?"


async def reclassify(tx: Tx, seq: int) -> NewEvent | None:
    """The event ``seq`` (of kind unknown) as this version reads it, written back; None while its
    event object is still unknown (or the body no longer parses, which leaves it as it is)."""
    from tcwebhook.contract.parse import reclassify as read_again

    row = await tx.one(_BODY, (seq,))
    if row is None:
        return None
    content_type, body = str(row[0]), bytes(row[1])
    try:
        parsed = read_again(content_type, body)
    except ContractError:
        return None
    if parsed.kind is EventKind.UNKNOWN:
        return None
    event = NewEvent.from_parsed(parsed, content_type=content_type, body=body, headers={})
    await tx.send(_KNOWN, (
        event.kind.value, event.key, event.order_id, event.shipment_id, event.purchase_order_number,
        event.shipment_number, event.last_updated_at, updated_micros(event.last_updated_at), seq,
    ))
    # Deliveries carry their event's key (per-key FIFO); the re-queue that follows reads it.
    await tx.send(_DELIVERY_KEYS, (event.key, seq))
    await keep_book(tx, seq, event)
    return event
