"""The operator views of each inbox: counts, sink health, arrivals, search, keyset and sink filters."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tcwebhook.inbox import AttemptOutcome, AttemptResult, DeliveryStatus, EventFilter, SqliteInbox

from .conftest import MakeInbox, order_event, shipment_event

pytestmark = pytest.mark.anyio


@pytest.fixture
async def two_sinks(make_inbox: MakeInbox) -> AsyncIterator[SqliteInbox]:
    box = make_inbox(("erp", "wms"))
    await box.open()
    yield box
    await box.close()


async def _settle(
    inbox: SqliteInbox, sink: str, status: DeliveryStatus, outcome: AttemptOutcome, error: str | None
) -> str:
    claims = await inbox.claim_due(owner="t", sinks=[sink], limit=1, lease=30, stale_kinds=frozenset())
    assert claims
    await inbox.finish(claims[0], AttemptResult(status, outcome, time.time(), 0.01, error))
    return claims[0].event.event_id


class TestCounts:
    """count_by_status has every status and the open quarantine entries."""

    async def test_counts(self, inbox: SqliteInbox) -> None:
        for i in range(3):
            await inbox.store(order_event(i, key=f"order:k{i}"))
        await _settle(inbox, "erp", DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, None)
        await inbox.quarantine(route="orders", content_type="", body=b"x", headers={}, reason="r", status_code=415)
        counts = await inbox.count_by_status()
        assert counts["pending"] == 2 and counts["delivered"] == 1 and counts["dead"] == 0
        assert counts["superseded"] == 0 and counts["stored"] == 0 and counts["quarantined"] == 1


class TestSinkHealth:
    """Backlog, oldest pending, dead letters, last success and last error per sink."""

    async def test_health(self, two_sinks: SqliteInbox) -> None:
        for i in range(3):
            await two_sinks.store(order_event(i, key=f"order:k{i}"))
        await _settle(two_sinks, "erp", DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, None)
        await _settle(two_sinks, "erp", DeliveryStatus.DEAD, AttemptOutcome.PERMANENT, "no such article")
        health = {h.sink: h for h in await two_sinks.sink_health(["erp", "wms", "idle"])}
        assert list(health) == ["erp", "idle", "wms"]
        erp, wms = health["erp"], health["wms"]
        assert (erp.backlog, erp.dead, wms.backlog, wms.dead) == (1, 1, 3, 0)
        assert erp.last_success_at is not None and erp.last_error == "no such article"
        assert wms.oldest_pending_at is not None and wms.last_success_at is None
        assert health["idle"].backlog == 0 and health["idle"].oldest_pending_at is None


class TestListing:
    """search, sink + delivery status, keyset pages, arrivals."""

    async def test_search(self, inbox: SqliteInbox) -> None:
        a = await inbox.store(order_event(1, key="order:o-1", order_id="o-1", purchase_order_number="PO-1"))
        b = await inbox.store(shipment_event(1))
        for text, expected in (("o-1", a), ("PO-1", a), ("msg-1", a), ("s-1", b), ("SN-1", b), ("ship-msg-1", b)):
            found = await inbox.list_events(EventFilter(search=text))
            assert [e.event_id for e in found] == [expected.event_id], text
        assert await inbox.list_events(EventFilter(number="msg-1")) == []  # number: no message ids

    async def test_sink_status_is_the_delivery_status(self, two_sinks: SqliteInbox) -> None:
        for i in range(2):
            await two_sinks.store(order_event(i, key=f"order:k{i}"))
        dead_id = await _settle(two_sinks, "erp", DeliveryStatus.DEAD, AttemptOutcome.PERMANENT, "x")
        erp_dead = await two_sinks.list_events(EventFilter(sink="erp", status="dead"))
        assert [e.event_id for e in erp_dead] == [dead_id]
        assert await two_sinks.list_events(EventFilter(sink="wms", status="dead")) == []
        assert len(await two_sinks.list_events(EventFilter(sink="wms", status="pending"))) == 2
        assert await two_sinks.list_event_ids(EventFilter(sink="erp", status="dead")) == [dead_id]

    async def test_keyset_pages(self, inbox: SqliteInbox) -> None:
        for i in range(7):
            await inbox.store(order_event(i))
        seen: list[int] = []
        before = None
        while True:
            page = await inbox.list_events(EventFilter(limit=3, before_seq=before))
            if not page:
                break
            seen.extend(e.seq for e in page)
            before = page[-1].seq
        assert seen == sorted(seen, reverse=True) and len(seen) == 7

    async def test_time_range(self, inbox: SqliteInbox) -> None:
        stored = []
        for i in range(6):
            stored.append(await inbox.store(order_event(i)))
        events = {e.seq: e for e in await inbox.list_events(EventFilter(limit=10))}
        # received_at is read back rounded to the microsecond: step just before each one.
        times = [events[r.seq].received_at - timedelta(microseconds=1) for r in stored]
        middle = EventFilter(since=times[1], until=times[4])
        assert [e.seq for e in await inbox.list_events(middle)] == [r.seq for r in reversed(stored[1:4])]
        assert [e.seq for e in await inbox.list_events(EventFilter(since=times[5]))] == [stored[5].seq]
        assert len(await inbox.list_events(EventFilter(until=times[0]))) == 0

    async def test_counts_follow_updates(self, inbox: SqliteInbox) -> None:
        for i in range(4):
            await inbox.store(order_event(i, key=f"order:k{i}"))
        claims = await inbox.claim_due(owner="t", sinks=["erp"], limit=4, lease=30, stale_kinds=frozenset())
        for claim, status in zip(claims, (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD, DeliveryStatus.DEAD,
                                          DeliveryStatus.PENDING), strict=True):
            outcome = AttemptOutcome.DELIVERED if status is DeliveryStatus.DELIVERED else AttemptOutcome.TRANSIENT
            await inbox.finish(claim, AttemptResult(status, outcome, time.time(), next_attempt_at=time.time()))
        counts = await inbox.count_by_status()
        assert (counts["delivered"], counts["dead"], counts["pending"]) == (1, 2, 1)
        await inbox.replay([claims[1].event.event_id])
        counts = await inbox.count_by_status()
        assert (counts["delivered"], counts["dead"], counts["pending"]) == (1, 1, 2)

    async def test_arrivals(self, inbox: SqliteInbox) -> None:
        for i in range(4):
            await inbox.store(order_event(i))
        buckets = await inbox.arrivals(datetime.now(UTC) - timedelta(hours=1), 60)
        assert sum(n for _, n in buckets) == 4
        assert await inbox.arrivals(datetime.now(UTC) + timedelta(minutes=1), 60) == []


class TestReplaySink:
    """replay(sink=...) touches that sink's deliveries only."""

    async def test_only_that_sink(self, two_sinks: SqliteInbox) -> None:
        await two_sinks.store(order_event(1, key="order:k1"))
        event_id = await _settle(two_sinks, "erp", DeliveryStatus.DEAD, AttemptOutcome.PERMANENT, "x")
        await _settle(two_sinks, "wms", DeliveryStatus.DEAD, AttemptOutcome.PERMANENT, "y")
        result = await two_sinks.replay([event_id], only_dead=True, sink="wms")
        assert result.requeued == 1
        states = {d.sink: d.status for d in await two_sinks.deliveries(event_id)}
        assert states == {"erp": "dead", "wms": "pending"}
