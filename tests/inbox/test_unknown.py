"""Events of kind unknown in every store: held as unrecognised (never pruned), and read again by a
replay, which gives one the models now know its kind, ids, key and order-book entry."""

from __future__ import annotations

import time

import orjson
import pytest

from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox import AttemptOutcome, AttemptResult, DeliveryStatus, EventFilter, EventStatus, NewEvent
from tcwebhook.orderbook.store import BookStore

from .conftest import MakeInbox

pytestmark = pytest.mark.anyio

UNKNOWN = orjson.dumps({"eventName": "OrderTeleportedByBuyer", "orderTeleportEvent": {"orderId": "o-9"},
                        "meta": {"messageId": "m-unknown"}})
# What an older version stored as unknown and this one knows: an order event.
KNOWN_NOW = orjson.dumps({"eventName": "OrderIssuedByBuyer", "meta": {"messageId": "m-known"},
                          "orderEvent": {"orderId": "o-7", "buyerOrder": {"purchaseOrderNumber": "PO-7"},
                                         "lastUpdatedAt": "2025-05-02T08:15:29.987Z"}})


def unknown(body: bytes, message_id: str) -> NewEvent:
    return NewEvent(kind=EventKind.UNKNOWN, event_name="OrderTeleportedByBuyer", dedupe_key=message_id,
                    content_type="application/json", body=body, message_id=message_id, book=None)


async def test_unrecognised_is_held_and_never_pruned(make_inbox: MakeInbox) -> None:
    box = make_inbox(("erp", "raw"))
    await box.open()
    try:
        stored = await box.store(unknown(UNKNOWN, "m-unknown"))
        claims = await box.claim_due(owner="t", sinks=("erp", "raw"), limit=10, lease=30, stale_kinds=frozenset())
        assert {c.sink for c in claims} == {"erp", "raw"}
        for claim in claims:
            result = (AttemptResult(DeliveryStatus.UNRECOGNISED, None, time.time()) if claim.sink == "erp" else
                      AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, time.time(), 0.01))
            assert await box.finish(claim, result)
        event = await box.get_event(stored.event_id)
        assert event.status == EventStatus.UNRECOGNISED  # ahead of delivered: erp never had it
        listed = await box.list_events(EventFilter(status=EventStatus.UNRECOGNISED))
        assert [e.event_id for e in listed] == [stored.event_id]
        assert (await box.count_by_status())["unrecognised"] == 1
        assert await box.prune(time.time() + 3600, 10) == 0

        # Still unknown on replay: the held delivery is pending again, the kind stays.
        result = await box.replay([stored.event_id], only_unrecognised=True)
        assert (result.requeued, result.reclassified) == (1, 0)
        assert {d.sink: d.status for d in await box.deliveries(stored.event_id)} == {
            "erp": "pending", "raw": "delivered"}
        assert (await box.get_event(stored.event_id)).kind is EventKind.UNKNOWN
    finally:
        await box.close()


async def test_replay_reads_it_again(make_inbox: MakeInbox) -> None:
    box = make_inbox(("erp",))
    await box.open()
    try:
        stored = await box.store(unknown(KNOWN_NOW, "m-known"))
        (claim,) = await box.claim_due(owner="t", sinks=("erp",), limit=10, lease=30, stale_kinds=frozenset())
        assert await box.finish(claim, AttemptResult(DeliveryStatus.UNRECOGNISED, None, time.time()))
        assert isinstance(box, BookStore)
        assert await box.book_entry("order:o-7") is None

        result = await box.replay([stored.event_id], only_unrecognised=True)
        assert (result.requeued, result.events, result.reclassified) == (1, 1, 1)
        event = await box.get_event(stored.event_id)
        assert (event.kind, event.key, event.order_id, event.purchase_order_number, event.status) == (
            EventKind.ORDER, "order:o-7", "o-7", "PO-7", EventStatus.PENDING)
        assert event.last_updated_at == "2025-05-02T08:15:29.987Z"
        (claim,) = await box.claim_due(owner="t", sinks=("erp",), limit=10, lease=30, stale_kinds=frozenset())
        assert (claim.event.kind, claim.event.key) == (EventKind.ORDER, "order:o-7")
        entry = await box.book_entry("order:o-7")
        assert entry is not None and entry.number == "PO-7"
        assert (await box.replay([stored.event_id], only_unrecognised=True)).requeued == 0  # none held now
    finally:
        await box.close()
