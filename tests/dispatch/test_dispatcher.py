"""The dispatcher against each real inbox (SQLite, PostgreSQL) and small real sinks."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tcwebhook.dispatch import Dispatcher, SyncStatus, pacing
from tcwebhook.errors import PermanentError, TransientError
from tcwebhook.inbox import EventStatus, SqliteInbox, StoredEvent
from tcwebhook.transport.server import tune_threads

from .conftest import (
    PERMANENT,
    BatchRecordingSink,
    RecordingSink,
    always,
    fail_first,
    opened,
    order,
    settings,
    settled,
    shipment,
    until,
)

pytestmark = pytest.mark.anyio


class TestDelivery:
    """Stored events reach every sink once and the outcome is recorded."""

    async def test_delivers_each_event_once(self, inbox: SqliteInbox) -> None:
        sink = RecordingSink()
        ids = [(await inbox.store(order(i))).event_id for i in range(20)]
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        try:
            await settled(inbox, ids)
        finally:
            await dispatcher.stop()
        assert sorted(sink.calls) == sorted(ids)
        assert sink.closed
        event = await inbox.get_event(ids[0])
        assert event.status == EventStatus.DELIVERED
        (delivery,) = await inbox.deliveries(ids[0])
        assert (delivery.status, delivery.attempts, delivery.claim_owner) == ("delivered", 1, None)
        (attempt,) = await inbox.attempts(ids[0])
        assert (attempt.sink, attempt.number, attempt.outcome, attempt.error) == ("erp", 1, "delivered", None)
        assert attempt.duration >= 0

    async def test_notify_wakes_the_loop(self, inbox: SqliteInbox) -> None:
        sink = RecordingSink()
        dispatcher = Dispatcher(inbox, [sink], settings(poll_interval=30))
        await dispatcher.start()
        try:
            await asyncio.sleep(0.05)  # the loop is now waiting for the long poll
            started = time.monotonic()
            result = await inbox.store(order(1))
            dispatcher.notify(result)
            await settled(inbox, [result.event_id], within=5)
            assert time.monotonic() - started < 15  # woken, not waiting for the 30 s poll (generous bound)
        finally:
            await dispatcher.stop()

    async def test_a_separate_process_store_is_found_by_polling(self, db_path: Path) -> None:
        sink = RecordingSink()
        async with opened(db_path) as worker_side, opened(db_path) as server_side:
            dispatcher = Dispatcher(worker_side, [sink], settings(poll_interval=0.05))
            await dispatcher.start()
            try:
                result = await server_side.store(order(1))
                await settled(worker_side, [result.event_id])
            finally:
                await dispatcher.stop()
        assert sink.calls == [result.event_id]

    async def test_several_sinks_and_filters(self, db_path: Path) -> None:
        erp = RecordingSink("erp")
        archive = RecordingSink("archive", accepts=lambda e: e.kind == "shipment")
        async with opened(db_path, ("erp", "archive")) as box:
            ids = [
                (await box.store(order(1))).event_id,
                (await box.store(shipment(2, "2025-01-01T00:00:00Z"))).event_id,
            ]
            dispatcher = Dispatcher(box, [erp, archive], settings())
            await dispatcher.start()
            try:
                await settled(box, ids)
            finally:
                await dispatcher.stop()
            assert sorted(erp.calls) == sorted(ids)
            assert archive.calls == [ids[1]]
            statuses = {d.sink: d.status for d in await box.deliveries(ids[0])}
            assert statuses == {"erp": "delivered", "archive": "skipped"}
            assert (await box.get_event(ids[0])).status == EventStatus.DELIVERED

    async def test_concurrency_is_bounded(self, inbox: SqliteInbox) -> None:
        async def slow(event: StoredEvent, call: int) -> None:
            await asyncio.sleep(0.02)

        sink = RecordingSink(plan=slow)
        ids = [(await inbox.store(order(i))).event_id for i in range(30)]
        dispatcher = Dispatcher(inbox, [sink], settings(concurrency=4))
        await dispatcher.start()
        try:
            await settled(inbox, ids)
        finally:
            await dispatcher.stop()
        assert sink.max_active <= 4
        assert sink.max_active >= 2


class TestOrdering:
    """Per-key FIFO: a key's events arrive in order; a failing key holds back only itself."""

    @pytest.mark.parametrize("dispatchers", [1, 2])
    async def test_order_per_key_under_random_failures(self, db_path: Path, dispatchers: int) -> None:
        rng = random.Random(20250502 + dispatchers)
        keys = [f"order:k{k}" for k in range(10)]
        decided: dict[tuple[str, int], bool] = {}

        async def flaky(event: StoredEvent, call: int) -> None:
            await asyncio.sleep(rng.random() / 500)
            if decided.setdefault((event.event_id, call), rng.random() < 0.3):
                raise TransientError("flaky ERP")

        delivered: list[StoredEvent] = []
        arrival: dict[str, list[str]] = defaultdict(list)
        # Several dispatchers, each with its own connection, stand for `serve` beside `worker`s.
        async with AsyncExitStack() as stack:
            boxes = [await stack.enter_async_context(opened(db_path)) for _ in range(dispatchers)]
            running = [
                Dispatcher(
                    box,
                    [RecordingSink(plan=flaky, delivered=delivered)],
                    settings(concurrency=6, initial_delay=0.005, max_delay=0.02),
                )
                for box in boxes
            ]
            for dispatcher in running:
                await dispatcher.start()
            try:
                # Events keep arriving while earlier ones are being delivered and retried.
                for i in range(150):
                    key = rng.choice(keys)
                    result = await boxes[0].store(order(i, key))
                    arrival[key].append(result.event_id)
                    running[0].notify()
                    if i % 10 == 0:
                        await asyncio.sleep(0.005)
                await settled(boxes[0], [e for ids in arrival.values() for e in ids], within=30)
            finally:
                for dispatcher in running:
                    await dispatcher.stop()
        received: dict[str, list[str]] = defaultdict(list)
        for event in delivered:
            assert event.key is not None
            received[event.key].append(event.event_id)
        assert received == arrival
        assert sum(1 for v in decided.values() if v) > 10  # failures really happened

    async def test_a_failing_key_does_not_hold_back_others(self, inbox: SqliteInbox) -> None:
        def plan(event: StoredEvent, call: int) -> None:
            if event.key == "order:stuck":
                raise TransientError("this order's ERP record is locked")

        sink = RecordingSink(plan=plan)
        stuck = [(await inbox.store(order(i, "order:stuck"))).event_id for i in range(3)]
        flowing = [(await inbox.store(order(10 + i, "order:fine"))).event_id for i in range(5)]
        dispatcher = Dispatcher(inbox, [sink], settings(max_attempts=1000))
        await dispatcher.start()
        try:
            await settled(inbox, flowing)
            await until(lambda: _called(sink, stuck[0], 3))
        finally:
            await dispatcher.stop()
        assert [e.event_id for e in sink.delivered] == flowing
        assert stuck[1] not in sink.calls and stuck[2] not in sink.calls
        assert [(await inbox.get_event(e)).status for e in stuck] == ["pending"] * 3

    async def test_a_dead_head_lets_the_key_move_on(self, inbox: SqliteInbox) -> None:
        def plan(event: StoredEvent, call: int) -> None:
            if event.dedupe_key == "msg-0":
                raise PermanentError("unknown article")

        sink = RecordingSink(plan=plan)
        ids = [(await inbox.store(order(i, "order:x"))).event_id for i in range(3)]
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        try:
            await settled(inbox, ids)
        finally:
            await dispatcher.stop()
        assert [(await inbox.get_event(e)).status for e in ids] == ["dead", "delivered", "delivered"]
        assert sink.calls == ids


async def _called(sink: RecordingSink, event_id: str, times: int) -> bool:
    return sink.counts[event_id] >= times


class TestRetries:
    """Transient failures back off and give up; permanent ones dead-letter at once."""

    async def test_retried_until_delivered(self, inbox: SqliteInbox) -> None:
        sink = RecordingSink(plan=fail_first(3))
        event_id = (await inbox.store(order(1))).event_id
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        try:
            await settled(inbox, [event_id])
        finally:
            await dispatcher.stop()
        attempts = await inbox.attempts(event_id)
        assert [(a.number, a.outcome) for a in attempts] == [
            (1, "transient"), (2, "transient"), (3, "transient"), (4, "delivered"),
        ]
        assert attempts[0].error == "TransientError: ERP down (call 1)"
        (delivery,) = await inbox.deliveries(event_id)
        assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 4, None)

    async def test_back_off_schedules_the_next_attempt(self, inbox: SqliteInbox) -> None:
        sink = RecordingSink(plan=always(RuntimeError))
        event_id = (await inbox.store(order(1))).event_id
        dispatcher = Dispatcher(inbox, [sink], settings(initial_delay=30, max_delay=60))
        await dispatcher.start()
        try:
            await until(lambda: _attempted(inbox, event_id, 1))
        finally:
            await dispatcher.stop()
        (delivery,) = await inbox.deliveries(event_id)
        assert delivery.status == "pending"
        assert delivery.next_attempt_at is not None
        wait = delivery.next_attempt_at.timestamp() - delivery.updated_at.timestamp()
        assert 29 < wait <= 30.5
        assert delivery.last_error == "RuntimeError: ERP refuses"
        assert sink.calls == [event_id]

    async def test_dead_after_max_attempts(self, inbox: SqliteInbox) -> None:
        sink = RecordingSink(plan=always(TransientError))
        event_id = (await inbox.store(order(1))).event_id
        dispatcher = Dispatcher(inbox, [sink], settings(max_attempts=4))
        await dispatcher.start()
        try:
            await settled(inbox, [event_id])
        finally:
            await dispatcher.stop()
        assert (await inbox.get_event(event_id)).status == EventStatus.DEAD
        (delivery,) = await inbox.deliveries(event_id)
        assert delivery.attempts == 4
        assert delivery.last_error is not None and delivery.last_error.startswith("gave up after 4 attempts")
        assert [a.outcome for a in await inbox.attempts(event_id)] == ["transient"] * 4
        assert {k: (await inbox.count_by_status())[k] for k in ("pending", "dead")} == {"pending": 0, "dead": 1}

    async def test_dead_when_too_old(self, inbox: SqliteInbox) -> None:
        sink = RecordingSink(plan=always(TransientError))
        event_id = (await inbox.store(order(1))).event_id
        dispatcher = Dispatcher(inbox, [sink], settings(max_age=0.001))
        await dispatcher.start()
        try:
            await settled(inbox, [event_id])
        finally:
            await dispatcher.stop()
        (delivery,) = await inbox.deliveries(event_id)
        assert (delivery.status, delivery.attempts) == ("dead", 1)
        assert delivery.last_error is not None and "older than" in delivery.last_error

    async def test_permanent_error_is_dead_at_once(self, inbox: SqliteInbox) -> None:
        sink = RecordingSink(plan=PERMANENT)
        event_id = (await inbox.store(order(1))).event_id
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        try:
            await settled(inbox, [event_id])
        finally:
            await dispatcher.stop()
        (attempt,) = await inbox.attempts(event_id)
        assert (attempt.outcome, attempt.error) == ("permanent", "PermanentError: ERP refuses")
        assert (await inbox.get_event(event_id)).status == EventStatus.DEAD


async def _attempted(inbox: SqliteInbox, event_id: str, n: int) -> bool:
    return len(await inbox.attempts(event_id)) >= n


class TestReplay:
    """Replay re-queues dead (or any) events; the dispatcher delivers them again."""

    async def test_replay_dead(self, inbox: SqliteInbox) -> None:
        broken = True

        def plan(event: StoredEvent, call: int) -> None:
            if broken:
                raise PermanentError("mapping missing")

        sink = RecordingSink(plan=plan)
        ids = [(await inbox.store(order(i))).event_id for i in range(3)]
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        try:
            await settled(inbox, ids)
            assert {k: (await inbox.count_by_status())[k] for k in ("pending", "dead")} == {"pending": 0, "dead": 3}
            broken = False
            result = await inbox.replay(ids[:2], only_dead=True)
            assert (result.requeued, result.events, result.missing) == (2, 2, ())
            dispatcher.notify()
            await settled(inbox, ids[:2])
        finally:
            await dispatcher.stop()
        assert [(await inbox.get_event(e)).status for e in ids] == ["delivered", "delivered", "dead"]
        (delivery,) = await inbox.deliveries(ids[0])
        assert delivery.attempts == 1  # counted afresh after the replay
        assert [a.outcome for a in await inbox.attempts(ids[0])] == ["permanent", "delivered"]

    async def test_replay_delivered_and_unknown(self, inbox: SqliteInbox) -> None:
        sink = RecordingSink()
        event_id = (await inbox.store(order(1))).event_id
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        try:
            await settled(inbox, [event_id])
            only_dead = await inbox.replay([event_id], only_dead=True)
            assert only_dead.requeued == 0
            result = await inbox.replay([event_id, "nope"])
            assert (result.requeued, result.missing) == (1, ("nope",))
            await until(lambda: _called(sink, event_id, 2))
            await settled(inbox, [event_id])
        finally:
            await dispatcher.stop()
        assert sink.calls == [event_id, event_id]

    async def test_replay_reaches_sinks_configured_later(self, db_path: Path) -> None:
        async with opened(db_path, ()) as before:
            event_id = (await before.store(order(1))).event_id
            assert (await before.get_event(event_id)).status == EventStatus.STORED
        sink = RecordingSink()
        async with opened(db_path, ("erp",)) as box:
            result = await box.replay([event_id])
            assert result.requeued == 1
            dispatcher = Dispatcher(box, [sink], settings())
            await dispatcher.start()
            try:
                await settled(box, [event_id])
            finally:
                await dispatcher.stop()
        assert sink.calls == [event_id]


class TestSuperseded:
    """A shipment state older than one already delivered is superseded, not delivered."""

    async def test_older_state_is_superseded(self, inbox: SqliteInbox) -> None:
        sink = RecordingSink()
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        try:
            newer = (await inbox.store(shipment(1, "2025-06-10T06:40:12.000Z"))).event_id
            await settled(inbox, [newer])
            # Tradecloud resent an older state after the newer one went through.
            older = (await inbox.store(shipment(2, "2025-06-10T06:40:11.000Z"))).event_id
            same = (await inbox.store(shipment(3, "2025-06-10T06:40:12"))).event_id  # zone-less = UTC
            other = (await inbox.store(shipment(4, "2025-01-01T00:00:00Z", shipment_id="s-2"))).event_id
            dispatcher.notify()
            await settled(inbox, [older, same, other])
        finally:
            await dispatcher.stop()
        assert [e.event_id for e in sink.delivered if e.key == "shipment:s-1"] == [newer, same]
        assert other in sink.calls
        assert (await inbox.get_event(older)).status == EventStatus.SUPERSEDED
        (attempt,) = await inbox.attempts(older)
        assert attempt.outcome == "superseded"
        assert attempt.error is not None and "2025-06-10T06:40:12" in attempt.error

    async def test_stale_among_queued_events(self, inbox: SqliteInbox) -> None:
        sink = RecordingSink()
        ids = [
            (await inbox.store(shipment(1, "2025-06-10T08:00:00Z"))).event_id,
            (await inbox.store(shipment(2, "2025-06-10T07:00:00Z"))).event_id,  # arrived late
            (await inbox.store(shipment(3, "2025-06-10T09:00:00Z"))).event_id,
        ]
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        try:
            await settled(inbox, ids)
        finally:
            await dispatcher.stop()
        assert sink.calls == [ids[0], ids[2]]
        assert [(await inbox.get_event(e)).status for e in ids] == ["delivered", "superseded", "delivered"]

    async def test_option_off_and_orders_untouched(self, inbox: SqliteInbox) -> None:
        sink = RecordingSink()
        ids = [
            (await inbox.store(shipment(1, "2025-06-10T08:00:00Z"))).event_id,
            (await inbox.store(shipment(2, "2025-06-10T07:00:00Z"))).event_id,
            (await inbox.store(order(3, "order:a", last_updated_at="2025-06-10T08:00:00Z"))).event_id,
            (await inbox.store(order(4, "order:a", last_updated_at="2025-06-10T07:00:00Z"))).event_id,
        ]
        dispatcher = Dispatcher(inbox, [sink], settings(stale_shipments=False))
        await dispatcher.start()
        try:
            await settled(inbox, ids)
        finally:
            await dispatcher.stop()
        assert sorted(sink.calls) == sorted(ids)

    async def test_forced_replay_delivers_a_superseded_state(self, inbox: SqliteInbox) -> None:
        sink = RecordingSink()
        ids = [
            (await inbox.store(shipment(1, "2025-06-10T08:00:00Z"))).event_id,
            (await inbox.store(shipment(2, "2025-06-10T07:00:00Z"))).event_id,
        ]
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        try:
            await settled(inbox, ids)
            assert (await inbox.replay([ids[1]])).requeued == 1  # not forced: superseded again
            await settled(inbox, ids)
            assert (await inbox.get_event(ids[1])).status == EventStatus.SUPERSEDED
            await inbox.replay([ids[1]], force=True)
            dispatcher.notify()
            await settled(inbox, ids)
        finally:
            await dispatcher.stop()
        assert sink.calls == [ids[0], ids[1]]
        assert (await inbox.get_event(ids[1])).status == EventStatus.DELIVERED


class TestLeases:
    """Claims are leased: a crashed claimant's work is picked up again, a live one's is not."""

    async def test_expired_claim_is_redelivered(self, inbox: SqliteInbox) -> None:
        event_id = (await inbox.store(order(1))).event_id
        # A dispatcher that claimed and then died: its lease runs out, nobody finishes it.
        (claim,) = await inbox.claim_due(
            owner="crashed-host:1", sinks=["erp"], limit=5, lease=0.3, stale_kinds=frozenset()
        )
        assert claim.event.event_id == event_id and claim.attempt == 1
        sink = RecordingSink()
        dispatcher = Dispatcher(inbox, [sink], settings(poll_interval=0.05))
        await dispatcher.start()
        try:
            await asyncio.sleep(0.1)
            assert sink.calls == []  # the lease still holds
            await settled(inbox, [event_id])
        finally:
            await dispatcher.stop()
        assert sink.calls == [event_id]
        attempts = await inbox.attempts(event_id)
        assert [(a.number, a.outcome) for a in attempts] == [(1, "abandoned"), (2, "delivered")]
        assert attempts[0].error is not None and "crashed-host:1" in attempts[0].error

    async def test_heartbeat_keeps_a_slow_delivery_claimed(self, db_path: Path) -> None:
        release = asyncio.Event()

        async def slow(event: StoredEvent, call: int) -> None:
            await release.wait()

        first, second = RecordingSink(plan=slow), RecordingSink()
        async with opened(db_path) as box_a, opened(db_path) as box_b:
            event_id = (await box_a.store(order(1))).event_id
            a = Dispatcher(box_a, [first], settings(lease_seconds=0.3), owner="a")
            b = Dispatcher(box_b, [second], settings(lease_seconds=0.3), owner="b")
            await a.start()
            await until(lambda: _called(first, event_id, 1))
            await b.start()
            try:
                await asyncio.sleep(1.0)  # more than three leases
                assert second.calls == []
                release.set()
                await settled(box_a, [event_id])
            finally:
                await a.stop()
                await b.stop()
        assert first.calls == [event_id]

    async def test_attempts_lost_to_crashes_end_in_dead_letter(self, inbox: SqliteInbox) -> None:
        event_id = (await inbox.store(order(1))).event_id
        for n in range(3):
            await inbox.claim_due(owner=f"crash-{n}", sinks=["erp"], limit=1, lease=0.0, stale_kinds=frozenset())
        sink = RecordingSink()
        dispatcher = Dispatcher(inbox, [sink], settings(max_attempts=3))
        await dispatcher.start()
        try:
            await settled(inbox, [event_id])
        finally:
            await dispatcher.stop()
        assert sink.calls == []
        (delivery,) = await inbox.deliveries(event_id)
        assert delivery.status == "dead"
        assert delivery.last_error is not None and "never finished" in delivery.last_error


class TestShutdown:
    """stop() lets deliveries finish within the bound and releases the rest."""

    async def test_hanging_delivery_is_released(self, inbox: SqliteInbox) -> None:
        async def hang(event: StoredEvent, call: int) -> None:
            if event.dedupe_key == "msg-0":
                await asyncio.Event().wait()

        sink = RecordingSink(plan=hang)
        ids = [(await inbox.store(order(i))).event_id for i in range(2)]
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        await settled(inbox, ids[1:])
        await until(lambda: _called(sink, ids[0], 1))
        started = time.monotonic()
        await dispatcher.stop(0.2)
        assert time.monotonic() - started < 10  # released after the grace, not hanging (generous bound)
        assert sink.closed
        (delivery,) = await inbox.deliveries(ids[0])
        assert (delivery.status, delivery.attempts, delivery.claim_owner) == ("pending", 0, None)
        assert [a.outcome for a in await inbox.attempts(ids[0])] == ["released"]
        assert (await inbox.get_event(ids[1])).status == EventStatus.DELIVERED

    async def test_in_flight_work_finishes_within_the_bound(self, inbox: SqliteInbox) -> None:
        async def slowish(event: StoredEvent, call: int) -> None:
            await asyncio.sleep(0.2)

        sink = RecordingSink(plan=slowish)
        event_id = (await inbox.store(order(1))).event_id
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        await until(lambda: _called(sink, event_id, 1))
        await dispatcher.stop(5)
        assert (await inbox.get_event(event_id)).status == EventStatus.DELIVERED


class TestBatches:
    """A sink that takes batches gets the claimed heads together; they settle in one transaction."""

    @pytest.mark.parametrize("dispatchers", [1, 2])
    async def test_order_per_key_under_random_failures(self, db_path: Path, dispatchers: int) -> None:
        rng = random.Random(20261207 + dispatchers)
        keys = [f"order:k{k}" for k in range(12)]
        decided: dict[tuple[str, int], bool] = {}

        async def flaky(event: StoredEvent, call: int) -> None:
            await asyncio.sleep(rng.random() / 500)
            if decided.setdefault((event.event_id, call), rng.random() < 0.3):
                raise TransientError("flaky ERP")

        delivered: list[StoredEvent] = []
        arrival: dict[str, list[str]] = defaultdict(list)
        async with AsyncExitStack() as stack:
            boxes = [await stack.enter_async_context(opened(db_path)) for _ in range(dispatchers)]
            sinks = [BatchRecordingSink(plan=flaky, delivered=delivered) for _ in boxes]
            running = [
                Dispatcher(box, [sink], settings(concurrency=8, initial_delay=0.005, max_delay=0.02))
                for box, sink in zip(boxes, sinks, strict=True)
            ]
            for dispatcher in running:
                await dispatcher.start()
            try:
                for i in range(150):
                    key = rng.choice(keys)
                    result = await boxes[0].store(order(i, key))
                    arrival[key].append(result.event_id)
                    running[0].notify()
                    if i % 15 == 0:
                        await asyncio.sleep(0.005)
                await settled(boxes[0], [e for ids in arrival.values() for e in ids], within=30)
            finally:
                for dispatcher in running:
                    await dispatcher.stop()
        received: dict[str, list[str]] = defaultdict(list)
        for event in delivered:
            assert event.key is not None
            received[event.key].append(event.event_id)
        assert received == arrival
        assert sum(1 for v in decided.values() if v) > 10  # failures really happened
        assert max(size for sink in sinks for size in sink.sizes) > 1  # batches really happened

    async def test_one_settle_transaction_for_a_batch(self, tmp_path: Path) -> None:
        async with opened(tmp_path / "inbox.db") as box:
            ids = [(await box.store(order(i))).event_id for i in range(16)]
            sink = BatchRecordingSink()
            dispatcher = Dispatcher(box, [sink], settings(concurrency=16, poll_interval=30))
            before = box.commits
            await dispatcher.start()
            try:
                await settled(box, ids)
            finally:
                await dispatcher.stop()
            assert sink.sizes == [16]
            # The claim, the settle and the claims that find nothing more: not one per event.
            assert box.commits - before <= 5
            for event_id in ids:
                (attempt,) = await box.attempts(event_id)
                assert (attempt.number, attempt.outcome) == (1, "delivered")

    async def test_batches_of_batch_size_one_at_a_time(self, tmp_path: Path) -> None:
        # A batch sink's claims are sized by batch_size, not by the concurrency of the other
        # sinks' deliveries, and one batch is in flight at a time: its writes share one disk.
        class Watched(BatchRecordingSink):
            running = most = 0

            async def deliver_batch(self, events: Sequence[StoredEvent]) -> list[BaseException | None]:
                self.running += 1
                self.most = max(self.most, self.running)
                try:
                    await asyncio.sleep(0.01)
                    return await super().deliver_batch(events)
                finally:
                    self.running -= 1

        async with opened(tmp_path / "inbox.db", ("batch", "single")) as box:
            ids = [(await box.store(order(i))).event_id for i in range(40)]
            batch, single = Watched(name="batch"), RecordingSink(name="single")
            dispatcher = Dispatcher(box, [batch, single], settings(concurrency=2, batch_size=16))
            await dispatcher.start()
            try:
                await settled(box, ids)
            finally:
                await dispatcher.stop()
            assert batch.sizes == [16, 16, 8] and batch.most == 1
            assert sorted(single.calls) == sorted(ids)

    async def test_outcomes_are_per_event(self, inbox: SqliteInbox) -> None:
        def plan(event: StoredEvent, call: int) -> None:
            if event.dedupe_key == "msg-1":
                raise PermanentError("ERP refuses this one")
            if event.dedupe_key == "msg-2" and call == 1:
                raise TransientError("ERP busy")

        sink = BatchRecordingSink(plan=plan, accepts=lambda e: e.dedupe_key != "msg-3")
        ids = [(await inbox.store(order(i))).event_id for i in range(6)]
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        try:
            await settled(inbox, ids)
        finally:
            await dispatcher.stop()
        statuses = [(await inbox.get_event(e)).status for e in ids]
        assert statuses == ["delivered", "dead", "delivered", "stored", "delivered", "delivered"]
        assert [a.outcome for a in await inbox.attempts(ids[2])] == ["transient", "delivered"]
        assert [a.outcome for a in await inbox.attempts(ids[1])] == ["permanent"]
        assert sink.counts[ids[3]] == 0 and max(sink.sizes) > 1

    async def test_stop_releases_a_hanging_batch(self, inbox: SqliteInbox) -> None:
        async def hang(event: StoredEvent, call: int) -> None:
            if event.dedupe_key == "msg-0" and call == 1:
                await asyncio.Event().wait()

        sink = BatchRecordingSink(plan=hang)
        ids = [(await inbox.store(order(i))).event_id for i in range(3)]
        dispatcher = Dispatcher(inbox, [sink], settings())
        await dispatcher.start()
        await until(lambda: _called(sink, ids[0], 1))
        await dispatcher.stop(0.2)
        for event_id in ids:  # the whole batch is pending again: delivered again later (at-least-once)
            (delivery,) = await inbox.deliveries(event_id)
            assert (delivery.status, delivery.attempts, delivery.claim_owner) == ("pending", 0, None)
            assert [a.outcome for a in await inbox.attempts(event_id)] == ["released"]
        again = BatchRecordingSink()
        dispatcher = Dispatcher(inbox, [again], settings())
        await dispatcher.start()
        try:
            await settled(inbox, ids)
        finally:
            await dispatcher.stop()
        assert sorted(again.calls) == sorted(ids)


class _Watched:
    """``asyncio`` as the pacing module sees it, noting every pause it takes."""

    def __init__(self, pauses: list[float]) -> None:
        self.pauses = pauses

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result: Any = None) -> Any:
        if 0 < delay <= pacing.MAX_PAUSE:
            self.pauses.append(delay)
        return await asyncio.sleep(delay, result)


class TestYielding:
    """While requests wait for the loop, the dispatcher pauses after a claim (``LOOP_SHARE``);
    on an idle loop it does not. The pauses are the dispatcher's short sleeps (at most
    ``MAX_PAUSE``), seen through its own module's view of ``asyncio``."""

    CLAIMS = 20  # claims per measurement (800 events make a hundred of eight)
    TIMEOUT = 60.0  # a bound for a slow machine, not a timing goal

    @staticmethod
    async def _claims_and_pauses(db_path: Path, monkeypatch: pytest.MonkeyPatch, *, busy: bool) -> tuple[int, int]:
        pauses: list[float] = []
        async with opened(db_path) as box:
            for i in range(800):  # a hundred claims of eight
                await box.store(order(i))
            made: list[int] = []
            enough = asyncio.Event()
            real_claim = box.claim_due

            async def counting(**kwargs: Any) -> Any:
                claims = await real_claim(**kwargs)
                if claims:
                    made.append(len(claims))
                    if len(made) >= TestYielding.CLAIMS:
                        enough.set()
                return claims

            box.claim_due = counting  # type: ignore[method-assign]
            stop = asyncio.Event()

            async def requests_waiting() -> None:
                # Stands for a receiver under load: every loop turn it works the loop 2 ms.
                while not stop.is_set():
                    until = time.perf_counter() + 0.002
                    while time.perf_counter() < until:
                        pass
                    await asyncio.sleep(0)

            monkeypatch.setattr(pacing, "asyncio", _Watched(pauses))
            dispatcher = Dispatcher(box, [BatchRecordingSink()], settings(concurrency=8, batch_size=8))
            load = asyncio.create_task(requests_waiting()) if busy else None
            await dispatcher.start()
            try:
                with contextlib.suppress(TimeoutError):  # the assertions say what was reached
                    await asyncio.wait_for(enough.wait(), TestYielding.TIMEOUT)
            finally:
                stop.set()
                await dispatcher.stop()
                monkeypatch.undo()
                if load is not None:
                    await load
            return len(made), len(pauses)

    @pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
    async def test_pauses_only_while_the_loop_is_late(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, busy: bool
    ) -> None:
        # As ``serve`` runs: without it the store's threads waited 5 ms for the GIL at every
        # SQLite call while the loop was busy, and a claim could take seconds.
        previous = sys.getswitchinterval()
        tune_threads()
        try:
            claims, pauses = await self._claims_and_pauses(tmp_path / "inbox.db", monkeypatch, busy=busy)
        finally:
            sys.setswitchinterval(previous)
        print(f"busy={busy}: {claims} claims, {pauses} pauses")
        assert claims >= TestYielding.CLAIMS
        if busy:
            assert pauses >= claims / 2
        else:
            assert pauses <= claims / 10

    async def test_no_pause_while_behind_intake(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Deliveries of events stored since it last claimed are not paused for, busy loop or
        not: pausing for them would let the backlog grow without bound under sustained load."""
        pauses: list[float] = []
        async with opened(tmp_path / "inbox.db") as box:
            dispatcher = Dispatcher(box, [RecordingSink()], settings(concurrency=8))
            stored = await box.store(order(1))
            stop = asyncio.Event()

            async def requests_waiting() -> None:
                while not stop.is_set():
                    until = time.perf_counter() + 0.002
                    while time.perf_counter() < until:
                        pass
                    await asyncio.sleep(0)

            load = asyncio.create_task(requests_waiting())
            monkeypatch.setattr(pacing, "asyncio", _Watched(pauses))
            try:
                dispatcher._pacer.spent = 0.002  # the loop time its last claim took
                await dispatcher._pacer.yield_to_intake()
                assert len(pauses) == 1, pauses  # nothing stored since: it pauses
                dispatcher.notify(stored)  # the receiver's call once it stored the event
                dispatcher._pacer.spent = 0.002
                await dispatcher._pacer.yield_to_intake()
                assert len(pauses) == 1, pauses  # behind intake: no pause
            finally:
                monkeypatch.undo()
                stop.set()
                await load


class TestSync:
    """deliver_now: sinks run before the answer; transient failures are left to the sender."""

    async def test_delivered(self, db_path: Path) -> None:
        sink = RecordingSink()
        async with opened(db_path, hold_new=True) as box:
            dispatcher = Dispatcher(box, [sink], settings(mode="sync"))
            await dispatcher.start()
            try:
                result = await box.store(order(1))
                outcome = await dispatcher.deliver_now(result.event_id)
                assert (outcome.status, str(outcome.status)) == (SyncStatus.DELIVERED, "delivered")
                again = await box.store(order(1))
                assert again.duplicate
                assert (await dispatcher.deliver_now(again.event_id)).status == "delivered"
            finally:
                await dispatcher.stop()
        assert sink.calls == [result.event_id]  # the duplicate is not delivered twice

    async def test_transient_is_left_to_the_sender(self, db_path: Path) -> None:
        sink = RecordingSink(plan=fail_first(1, ConnectionError))
        async with opened(db_path, hold_new=True) as box:
            dispatcher = Dispatcher(box, [sink], settings(mode="sync", poll_interval=0.02))
            await dispatcher.start()
            try:
                result = await box.store(order(1))
                outcome = await dispatcher.deliver_now(result.event_id)
                assert outcome.status == "transient"
                assert "ConnectionError" in outcome.detail
                (delivery,) = await box.deliveries(result.event_id)
                assert (delivery.status, delivery.next_attempt_at) == ("pending", None)
                await asyncio.sleep(0.3)  # many polls: the background loop must not retry it
                assert sink.calls == [result.event_id]
                # Tradecloud resends the same message: a duplicate, delivered now.
                resend = await box.store(order(1))
                assert resend.duplicate
                assert (await dispatcher.deliver_now(resend.event_id)).status == "delivered"
            finally:
                await dispatcher.stop()
        assert sink.calls == [result.event_id, result.event_id]

    async def test_permanent(self, db_path: Path) -> None:
        sink = RecordingSink(plan=PERMANENT)
        async with opened(db_path, hold_new=True) as box:
            dispatcher = Dispatcher(box, [sink], settings(mode="sync"))
            result = await box.store(order(1))
            outcome = await dispatcher.deliver_now(result.event_id)
            assert outcome.status == "permanent"
            assert "ERP refuses" in outcome.detail
            assert (await box.get_event(result.event_id)).status == EventStatus.DEAD
            # A resend is answered the same way, without another attempt.
            assert (await dispatcher.deliver_now(result.event_id)).status == "permanent"
            await dispatcher.stop()
        assert sink.calls == [result.event_id]

    async def test_transient_wins_over_permanent(self, db_path: Path) -> None:
        down = RecordingSink("erp", plan=fail_first(1))
        refusing = RecordingSink("archive", plan=PERMANENT)
        async with opened(db_path, ("erp", "archive"), hold_new=True) as box:
            dispatcher = Dispatcher(box, [down, refusing], settings(mode="sync"))
            result = await box.store(order(1))
            # 503 first, so the sender comes back for the sink that may still succeed...
            assert (await dispatcher.deliver_now(result.event_id)).status == "transient"
            # ...then 400: the event is kept as dead-letter for the refusing sink.
            assert (await dispatcher.deliver_now(result.event_id)).status == "permanent"
            await dispatcher.stop()
        assert down.calls == [result.event_id] * 2
        assert refusing.calls == [result.event_id]

    async def test_fifo_in_sync_mode(self, db_path: Path) -> None:
        def plan(event: StoredEvent, call: int) -> None:
            if event.dedupe_key == "msg-1" and call == 1:
                raise TransientError("ERP down")

        sink = RecordingSink(plan=plan)
        async with opened(db_path, hold_new=True) as box:
            dispatcher = Dispatcher(box, [sink], settings(mode="sync"))
            first = await box.store(order(1, "order:a"))
            second = await box.store(order(2, "order:a"))
            assert (await dispatcher.deliver_now(first.event_id)).status == "transient"
            outcome = await dispatcher.deliver_now(second.event_id)
            assert outcome.status == "transient"
            assert "earlier event" in outcome.detail
            assert (await dispatcher.deliver_now(first.event_id)).status == "delivered"
            assert (await dispatcher.deliver_now(second.event_id)).status == "delivered"
            await dispatcher.stop()
        assert sink.calls == [first.event_id, first.event_id, second.event_id]

    async def test_cancelled_request_releases_the_claim(self, db_path: Path) -> None:
        entered = asyncio.Event()

        async def hang(event: StoredEvent, call: int) -> None:
            entered.set()
            if call == 1:
                await asyncio.Event().wait()

        sink = RecordingSink(plan=hang)
        async with opened(db_path, hold_new=True) as box:
            dispatcher = Dispatcher(box, [sink], settings(mode="sync"))
            result = await box.store(order(1))
            request = asyncio.create_task(dispatcher.deliver_now(result.event_id))
            await entered.wait()
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
            (delivery,) = await box.deliveries(result.event_id)
            assert (delivery.claim_owner, delivery.next_attempt_at, delivery.attempts) == (None, None, 0)
            assert (await dispatcher.deliver_now(result.event_id)).status == "delivered"
            await dispatcher.stop()

    async def test_no_sinks_and_skipped(self, db_path: Path) -> None:
        async with opened(db_path, (), hold_new=True) as box:
            nobody = Dispatcher(box, [], settings(mode="sync"))
            result = await box.store(order(1))
            assert (await nobody.deliver_now(result.event_id)).status == "delivered"
        sink = RecordingSink(accepts=lambda e: False)
        async with opened(db_path, hold_new=True) as box:
            picky = Dispatcher(box, [sink], settings(mode="sync"))
            result = await box.store(order(2))
            assert (await picky.deliver_now(result.event_id)).status == "delivered"
            assert (await box.get_event(result.event_id)).status == EventStatus.STORED
        assert sink.calls == []

    async def test_replayed_event_is_delivered_by_the_background_loop(self, db_path: Path) -> None:
        sink = RecordingSink()
        async with opened(db_path, hold_new=True) as box:
            dispatcher = Dispatcher(box, [sink], settings(mode="sync"))
            await dispatcher.start()
            try:
                result = await box.store(order(1))
                await asyncio.sleep(0.2)
                assert sink.calls == []  # held for its request
                await box.replay([result.event_id])
                await settled(box, [result.event_id])
            finally:
                await dispatcher.stop()
        assert sink.calls == [result.event_id]
