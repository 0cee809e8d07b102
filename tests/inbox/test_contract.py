"""The inbox contract, the same for every store: each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import EventNotFound, StoreUnavailable
from tcwebhook.inbox import AttemptOutcome, AttemptResult, DeliveryStatus, EventFilter, EventStatus, Inbox, NewEvent
from tcwebhook.inbox.rules import intake
from tcwebhook.inbox.tx import Tx

from .conftest import MakeInbox, first_value, order_event, shipment_event

pytestmark = pytest.mark.anyio


class TestStore:
    """store() keeps the event byte-for-byte and answers with a stable, sortable id."""

    async def test_round_trip(self, inbox: Inbox) -> None:
        event = order_event(1, body=b"\x00binary\xff body")
        result = await inbox.store(event)
        assert not result.duplicate
        assert uuid.UUID(result.event_id).version == 7
        stored = await inbox.get_event(result.event_id)
        assert stored.body == b"\x00binary\xff body"
        assert stored.seq == result.seq
        assert stored.kind is EventKind.ORDER
        assert stored.dedupe_key == "msg-1"
        assert stored.key == "order:o-1"
        assert stored.purchase_order_number == "PO-1"
        assert stored.last_updated_at == "2025-05-02T08:15:29.987Z"
        assert stored.headers == {"content-type": "application/json", "authorization": "[redacted]"}
        assert stored.status == EventStatus.PENDING
        assert abs(stored.received_at - datetime.now(UTC)) < timedelta(seconds=10)

    async def test_seq_follows_arrival_and_ids_sort_by_time(self, inbox: Inbox) -> None:
        results = [await inbox.store(order_event(i)) for i in range(5)]
        assert [r.seq for r in results] == sorted(r.seq for r in results)
        assert len({r.event_id for r in results}) == 5
        assert [r.event_id[:8] for r in results] == sorted(r.event_id[:8] for r in results)

    async def test_duplicate_returns_the_first_event(self, inbox: Inbox) -> None:
        first = await inbox.store(order_event(7))
        again = await inbox.store(order_event(7, body=b"{}"))
        assert again.duplicate
        assert (again.event_id, again.seq) == (first.event_id, first.seq)
        assert len(await inbox.list_events(EventFilter())) == 1
        assert len(await inbox.deliveries(first.event_id)) == 1

    async def test_concurrent_duplicates_store_once(self, inbox: Inbox) -> None:
        results = await asyncio.gather(*(inbox.store(order_event(3)) for _ in range(40)))
        assert sum(not r.duplicate for r in results) == 1
        assert len({r.event_id for r in results}) == 1

    async def test_deliveries_created_with_the_event(self, make_inbox: MakeInbox) -> None:
        box = make_inbox(("erp", "archive"))
        await box.open()
        try:
            result = await box.store(order_event(1))
            deliveries = await box.deliveries(result.event_id)
            assert [(d.sink, d.status, d.attempts) for d in deliveries] == [
                ("archive", "pending", 0),
                ("erp", "pending", 0),
            ]
            assert all(d.next_attempt_at is not None for d in deliveries)
        finally:
            await box.close()

    async def test_without_sinks_the_event_is_only_stored(self, make_inbox: MakeInbox) -> None:
        box = make_inbox()
        await box.open()
        try:
            result = await box.store(order_event(1))
            assert (await box.get_event(result.event_id)).status == EventStatus.STORED
            assert await box.deliveries(result.event_id) == []
        finally:
            await box.close()

    async def test_held_deliveries_wait_for_the_request(self, make_inbox: MakeInbox) -> None:
        box = make_inbox(("erp",), hold_new=True)
        await box.open()
        try:
            result = await box.store(order_event(1))
            (delivery,) = await box.deliveries(result.event_id)
            assert delivery.status == "pending"
            assert delivery.next_attempt_at is None
        finally:
            await box.close()


class TestDurability:
    """A stored event is committed and visible to other connections and processes."""

    async def test_survives_reopen(self, make_inbox: MakeInbox) -> None:
        box = make_inbox(("erp",))
        await box.open()
        result = await box.store(order_event(1))
        await box.close()
        box = make_inbox(("erp",))
        await box.open()
        try:
            assert (await box.get_event(result.event_id)).body == order_event(1).body
            assert (await box.store(order_event(1))).duplicate
        finally:
            await box.close()

class TestGroupCommit:
    """Concurrent stores share transactions: fewer commits (fsyncs) than stores."""

    async def test_64_concurrent_writers(self, inbox: Inbox) -> None:
        writers, per_writer = 64, 40
        commits_before = inbox.commits
        started = time.perf_counter()

        async def writer(w: int) -> None:
            for n in range(per_writer):
                result = await inbox.store(order_event(w * per_writer + n))
                assert not result.duplicate

        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - started
        stores = writers * per_writer
        commits = inbox.commits - commits_before
        print(f"\ngroup commit: {stores} stores by {writers} writers in {elapsed:.3f}s = "
              f"{stores / elapsed:.0f} stores/s, {commits} commits ({stores / commits:.1f} stores/commit)")
        assert commits < stores / 4
        assert len(await inbox.list_event_ids(EventFilter(limit=10_000))) == stores

class TestFailures:
    """Store failures surface as StoreUnavailable; the writer survives and recovers."""

    async def test_closed_inbox(self, make_inbox: MakeInbox) -> None:
        box = make_inbox(("erp",))
        await box.open()
        await box.close()
        with pytest.raises(StoreUnavailable):
            await box.store(order_event(1))
        with pytest.raises(StoreUnavailable):
            await box.get_event("x")


class TestQuarantine:
    """Rejected bodies are kept with their reason and can be reprocessed."""

    async def test_keep_list_get(self, inbox: Inbox) -> None:
        first = await inbox.quarantine(
            route="orders", content_type="text/plain", body=b"nope", headers={"x-a": "1"},
            reason="unsupported media type", status_code=415,
        )
        second = await inbox.quarantine(
            route="shipments", content_type="application/json", body=b"{", headers={},
            reason="not JSON", status_code=400,
        )
        entries = await inbox.list_quarantined()
        assert [e.id for e in entries] == [second, first]
        entry = await inbox.get_quarantined(first)
        assert (entry.route, entry.body, entry.reason, entry.status_code) == (
            "orders", b"nope", "unsupported media type", 415,
        )
        assert entry.headers == {"x-a": "1"}
        assert entry.reprocessed_event_id is None
        with pytest.raises(EventNotFound):
            await inbox.get_quarantined("missing")

    async def test_reprocess(self, inbox: Inbox) -> None:
        qid = await inbox.quarantine(
            route="orders", content_type="application/json", body=b"{}", headers={},
            reason="bad", status_code=400,
        )
        result = await inbox.reprocess_quarantined(qid, order_event(5))
        assert (await inbox.get_quarantined(qid)).reprocessed_event_id == result.event_id
        assert (await inbox.get_event(result.event_id)).status == EventStatus.PENDING
        with pytest.raises(EventNotFound):
            await inbox.reprocess_quarantined("missing", order_event(6))
        assert len(await inbox.list_events(EventFilter())) == 1


class TestQueries:
    """Listing and filtering events for operators."""

    async def test_filters(self, inbox: Inbox) -> None:
        for i in range(6):
            await inbox.store(order_event(i))
        await inbox.store(shipment_event(1))
        everything = await inbox.list_events(EventFilter())
        assert [e.seq for e in everything] == sorted((e.seq for e in everything), reverse=True)
        assert len(await inbox.list_events(EventFilter(kind=EventKind.SHIPMENT))) == 1
        assert len(await inbox.list_events(EventFilter(event_name="Order*"))) == 6
        assert len(await inbox.list_events(EventFilter(event_name="*Updated"))) == 1
        assert len(await inbox.list_events(EventFilter(number="PO-3"))) == 1
        assert len(await inbox.list_events(EventFilter(number="o-0"))) == 2  # order id, via the key
        assert len(await inbox.list_events(EventFilter(number="SN-1"))) == 1
        assert len(await inbox.list_events(EventFilter(number="s-1"))) == 1
        assert len(await inbox.list_events(EventFilter(status="pending"))) == 7
        assert len(await inbox.list_events(EventFilter(status="dead"))) == 0
        assert len(await inbox.list_events(EventFilter(limit=2))) == 2
        future = datetime.now(UTC) + timedelta(hours=1)
        assert await inbox.list_events(EventFilter(since=future)) == []
        assert len(await inbox.list_events(EventFilter(until=future))) == 7
        ids = await inbox.list_event_ids(EventFilter())
        assert ids == [e.event_id for e in reversed(everything)]
        assert {k: (await inbox.count_by_status())[k] for k in ("pending", "dead")} == {"pending": 7, "dead": 0}
        assert await inbox.pending_sinks() == ["erp"]

    async def test_unknown_event(self, inbox: Inbox) -> None:
        with pytest.raises(EventNotFound):
            await inbox.get_event("nope")
        assert await inbox.deliveries("nope") == []
        assert await inbox.attempts("nope") == []


class TestPrune:
    """Prune deletes a settled event with every row that belongs to it, on either store."""

    async def test_event_and_its_rows_go_together(self, inbox: Inbox) -> None:
        kept = await inbox.store(order_event(1))
        gone = await inbox.store(order_event(2, reconciled=True))
        claims = await inbox.claim_due(owner="w", sinks=["erp"], limit=10, lease=30.0, stale_kinds=frozenset())
        for claim in claims:
            if claim.event.event_id == gone.event_id:
                done = AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, time.time(), 0.01)
                assert await inbox.finish(claim, done)
        assert await inbox.prune(time.time() + 60) == 1
        with pytest.raises(EventNotFound):
            await inbox.get_event(gone.event_id)
        assert (await inbox.get_event(kept.event_id)).status == EventStatus.PENDING
        rows = (await inbox.describe()).rows
        assert (rows["events"], rows["deliveries"], rows["attempts"]) == (1, 1, 0)
        assert await inbox._read(first_value("SELECT count(*) FROM reconciled")) == 0  # type: ignore[attr-defined]


class TestStoreHooks:
    """``rules.intake.ON_STORED``: more rows written in a new event's own store transaction."""

    @staticmethod
    async def remember(tx: Tx, seq: int, event: NewEvent) -> None:
        if event.dedupe_key == "msg-13":
            raise ValueError("this event is refused by a hook")
        await tx.send("INSERT INTO service_state (name, value) VALUES (?, ?)", (f"seen:{seq}", event.dedupe_key))

    async def test_written_with_every_new_event_and_not_for_duplicates(
        self, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(intake, "ON_STORED", (*intake.ON_STORED, self.remember))
        results = await asyncio.gather(*(inbox.store(order_event(i % 8)) for i in range(24)))
        assert sum(not r.duplicate for r in results) == 8
        for result in results:
            assert await inbox.get_state(f"seen:{result.seq}") == (await inbox.get_event(result.event_id)).dedupe_key
        assert await inbox._read(first_value("SELECT count(*) FROM service_state")) == 8  # type: ignore[attr-defined]

    async def test_a_failing_hook_stores_nothing(self, inbox: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(intake, "ON_STORED", (*intake.ON_STORED, self.remember))
        outcomes = await asyncio.gather(
            inbox.store(order_event(12)), inbox.store(order_event(13)), inbox.store(order_event(14)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[1], StoreUnavailable)
        assert {e.dedupe_key for e in await inbox.list_events(EventFilter())} == {"msg-12", "msg-14"}
        assert (await inbox.describe()).rows["deliveries"] == 2


class TestFinishMany:
    """A batch settled in one transaction, each step one statement for the whole batch."""

    async def test_each_outcome_settles_as_alone(self, inbox: Inbox) -> None:
        stored = [await inbox.store(order_event(i)) for i in (0, 1, 2, 3, 4, 5)]  # 5 waits behind 0 (key o-0)
        claims = await inbox.claim_due(owner="w", sinks=["erp"], limit=10, lease=60.0, stale_kinds=frozenset())
        by_seq = {c.event.seq: c for c in claims}
        assert sorted(by_seq) == [r.seq for r in stored[:5]]
        now = time.time()
        settles = [
            (by_seq[stored[0].seq], AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, now, 0.01)),
            (by_seq[stored[1].seq], AttemptResult(DeliveryStatus.DEAD, AttemptOutcome.PERMANENT, now, 0.02, "no")),
            (
                by_seq[stored[2].seq],
                AttemptResult(DeliveryStatus.PENDING, AttemptOutcome.TRANSIENT, now, 0.03, "later", now + 300),
            ),
            (
                by_seq[stored[3].seq],
                AttemptResult(DeliveryStatus.PENDING, AttemptOutcome.RELEASED, now, 0.0, None, now),
            ),
            # A claim this dispatcher no longer holds: recorded as an attempt, settles nothing.
            (
                dataclasses.replace(by_seq[stored[4].seq], owner="gone"),
                AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, now, 0.04),
            ),
        ]
        assert await inbox.finish_many(settles) == [True, True, True, True, False]

        states = {r.seq: (await inbox.deliveries(r.event_id))[0] for r in stored}
        assert states[stored[0].seq].status == DeliveryStatus.DELIVERED
        assert (states[stored[1].seq].status, states[stored[1].seq].last_error) == (DeliveryStatus.DEAD, "no")
        assert (states[stored[2].seq].status, states[stored[2].seq].attempts) == (DeliveryStatus.PENDING, 1)
        assert states[stored[2].seq].claim_owner is None
        assert (states[stored[3].seq].status, states[stored[3].seq].attempts) == (DeliveryStatus.PENDING, 0)
        assert states[stored[4].seq].claim_owner == "w"  # still leased to the holder
        statuses = [(await inbox.get_event(r.event_id)).status for r in stored[:3]]
        assert statuses == [EventStatus.DELIVERED, EventStatus.DEAD, EventStatus.PENDING]
        attempts = {r.seq: [(a.number, a.outcome) for a in await inbox.attempts(r.event_id)] for r in stored}
        assert attempts[stored[0].seq] == [(1, "delivered")]
        assert attempts[stored[1].seq] == [(1, "permanent")]
        assert attempts[stored[4].seq] == [(1, "delivered")]
        assert attempts[stored[5].seq] == []

        # The next of key o-0 moved up; the released one is due again; the retry and the lease wait.
        again = await inbox.claim_due(owner="w", sinks=["erp"], limit=10, lease=60.0, stale_kinds=frozenset())
        assert sorted(c.event.seq for c in again) == [stored[3].seq, stored[5].seq]

    async def test_a_batch_with_a_delivery_twice_settles_one_by_one(self, inbox: Inbox) -> None:
        result = await inbox.store(order_event(0))
        (claim,) = await inbox.claim_due(owner="w", sinks=["erp"], limit=10, lease=60.0, stale_kinds=frozenset())
        done = AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, time.time(), 0.01)
        assert await inbox.finish_many([(claim, done), (claim, done)]) == [True, False]
        assert (await inbox.get_event(result.event_id)).status == EventStatus.DELIVERED
        assert [a.number for a in await inbox.attempts(result.event_id)] == [1, 2]
