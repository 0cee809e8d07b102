"""The delivery scenarios every server-backed sink must pass, run through the real dispatcher.

``outage``: 200 events over 20 orders; the server is stopped for a few seconds while events are
still arriving, then started again. ``dead_then_replayed``: a refused delivery is dead-lettered
with its reason, and the operator's replay (the console's ``replay`` of dead deliveries)
delivers it once the cause is fixed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tcwebhook.config import DeliverySettings, StoreSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.dispatch import Dispatcher
from tcwebhook.inbox import NewEvent, SqliteInbox, StoredEvent
from tcwebhook.sinks.base import Probed, Sink

EVENTS = 200
ORDERS = 20
OUTAGE_SECONDS = 3.0


def order_event(i: int) -> NewEvent:
    order = f"o-{i % ORDERS:02d}"
    return NewEvent(
        kind=EventKind.ORDER,
        event_name="OrderLinesAcceptedBySupplier",
        dedupe_key=f"msg-{i}",
        content_type="application/json",
        body=b'{"eventName":"OrderLinesAcceptedBySupplier","orderEvent":{"orderId":"%s","n":%d}}'
        % (order.encode(), i),
        key=f"order:{order}",
        order_id=order,
        purchase_order_number=f"PO-{order}",
        message_id=f"msg-{i}",
    )


def delivery_settings() -> DeliverySettings:
    # Quick retries, and never giving up within a test's outage.
    return DeliverySettings(
        concurrency=8, poll_interval=0.05, initial_delay=0.1, max_delay=0.5, jitter=0.1,
        max_attempts=10_000, lease_seconds=30.0, shutdown_timeout=5.0,
    )


async def _until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {within:g} s")
        await asyncio.sleep(0.05)


async def _count(box: SqliteInbox, status: str) -> int:
    return (await box.count_by_status()).get(status, 0)


@dataclass
class OutageRun:
    events: list[StoredEvent]  # in arrival order
    failed_attempts: int  # attempts that failed while the server was down

    def per_order(self) -> dict[str, list[str]]:
        """Event ids of each order, in arrival order: the order every sink must keep."""
        found: dict[str, list[str]] = {}
        for event in self.events:
            found.setdefault(event.order_id or "", []).append(event.event_id)
        return found


async def outage(
    tmp_path: Path,
    sink: Sink,
    stop_server: Callable[[], None],
    start_server: Callable[[], None],
    within: float = 180.0,
) -> OutageRun:
    """Deliver ``EVENTS`` events; stop the server half-way, for ``OUTAGE_SECONDS``, while more arrive."""
    box = SqliteInbox(tmp_path / "inbox.db", StoreSettings(), sinks=(sink.name,))
    await box.open()
    dispatcher = Dispatcher(box, [sink], delivery_settings())
    try:
        ids = [(await box.store(order_event(i))).event_id for i in range(EVENTS // 2)]
        await dispatcher.start()
        await _until(lambda: _has(box, "delivered", EVENTS // 4), within, "a quarter delivered")
        await asyncio.to_thread(stop_server)
        for i in range(EVENTS // 2, EVENTS):
            ids.append((await box.store(order_event(i))).event_id)
            dispatcher.notify()
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(start_server)
        await _until(lambda: _has(box, "delivered", EVENTS), within, "every event delivered")
        events = [await box.get_event(event_id) for event_id in ids]
        failed = 0
        for event_id in ids:
            failed += sum(a.outcome == "transient" for a in await box.attempts(event_id))
        counts = {k: v for k, v in (await box.count_by_status()).items() if v}
        assert counts == {"delivered": EVENTS}, counts
    finally:
        await dispatcher.stop()
        await box.close()
    return OutageRun(events, failed)


async def _has(box: SqliteInbox, status: str, count: int) -> bool:
    return await _count(box, status) >= count


def in_order(seen: Sequence[str], expected: dict[str, list[str]], order_of: dict[str, str]) -> dict[str, list[str]]:
    """``seen`` (event ids as the ERP side got them) split per order, first sightings only."""
    firsts: dict[str, list[str]] = {order: [] for order in expected}
    met: set[str] = set()
    for event_id in seen:
        if event_id not in met:
            met.add(event_id)
            firsts[order_of[event_id]].append(event_id)
    return firsts


async def dead_then_replayed(
    tmp_path: Path,
    refused: Sink,
    fixed: Callable[[], Sink],
    fix: Callable[[], Awaitable[None]] | None = None,
) -> tuple[str, str]:
    """Deliver one event to ``refused``: dead at the first attempt. Then (``fix``, a restart with the
    ``fixed`` sink) replay it: delivered. Returns the event id and the dead-letter reason."""
    box = SqliteInbox(tmp_path / "replay.db", StoreSettings(), sinks=(refused.name,))
    await box.open()
    try:
        event_id = (await box.store(order_event(0))).event_id
        dispatcher = Dispatcher(box, [refused], delivery_settings())
        await dispatcher.start()
        try:
            await _until(lambda: _has(box, "dead", 1), 60, "the event dead-lettered")
        finally:
            await dispatcher.stop()
        attempts = await box.attempts(event_id)
        assert [a.outcome for a in attempts] == ["permanent"], attempts
        reason = attempts[0].error or ""
        if fix is not None:
            await fix()
        restarted = fixed()
        if isinstance(restarted, Probed):
            await restarted.probe()  # what start-up does (and create_table creates the table)
        dispatcher = Dispatcher(box, [restarted], delivery_settings())
        await dispatcher.start()
        try:
            result = await box.replay([event_id], only_dead=True)
            assert result.requeued == 1
            dispatcher.notify()
            await _until(lambda: _has(box, "delivered", 1), 60, "the replayed event delivered")
        finally:
            await dispatcher.stop()
    finally:
        await box.close()
    return event_id, reason
