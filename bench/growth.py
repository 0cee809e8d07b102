"""Pre-filling an inbox in bulk, for "does the receiver slow down as the inbox grows?".

Method: the events are written through the inbox's own API (``open_inbox(settings).store``),
many at once so the group-commit writer packs up to ``[store] max_batch`` of them into one
transaction; that is the fast path, not a different storage path. Each is a unique variant of the
benchmark's 4 KB order event (fresh messageId, one of ``orders`` order ids), as the receiver
would have stored it. The deliveries this creates for the configured sink are then settled as
delivered through ``claim_due``/``finish``, as a drained dispatcher leaves them, so the measured
server starts with an idle backlog, like a long-running production inbox.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.body import BodyTemplate

from tcwebhook.config import load_settings
from tcwebhook.contract.kinds import routing_key
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.inbox.base import AttemptOutcome, AttemptResult, DeliveryStatus, NewEvent
from tcwebhook.inbox.factory import open_inbox

CHUNK = 2048  # stores in flight at once: several group-commit batches queued


@dataclass(frozen=True)
class PrefillResult:
    events: int
    store_seconds: float
    settle_seconds: float
    db_bytes: int

    @property
    def bytes_per_1000(self) -> int:
        return round(self.db_bytes * 1000 / self.events) if self.events else 0


def _base_event(template: BodyTemplate) -> NewEvent:
    """The event the receiver would store for the template body (same parser, same fields)."""
    parsed = parse_webhook("orders", template.body, "application/json")
    headers = {"content-type": "application/json", "user-agent": "tcwebhook-bench"}
    return NewEvent.from_parsed(parsed, content_type="application/json", body=template.body, headers=headers)


def _variant(base: NewEvent, template: BodyTemplate, serial: int, orders: int) -> NewEvent:
    body = template.variant(serial, orders)
    mid = f"{template.message_id[:24].decode()}{serial:012x}"
    oid = f"{template.order_id[:24].decode()}{serial % orders:012x}"
    return replace(
        base,
        body=body,
        dedupe_key=mid,
        message_id=mid,
        order_id=oid,
        key=routing_key(base.kind, order_id=oid, shipment_id=None),
    )


def db_bytes(db: Path) -> int:
    """The inbox file plus its write-ahead log and shared-memory index, as they lie on disk."""
    files = (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
    return sum(p.stat().st_size for p in files if p.exists())


async def prefill(config: Path, db: Path, count: int, template: BodyTemplate, *, orders: int = 100_000,
                  first_serial: int = 1 << 40, progress: bool = False, settle: bool = True) -> PrefillResult:
    """Store ``count`` unique events into the inbox of ``config``; ``settle``: mark them delivered."""
    settings = load_settings(config)
    sinks = [s.name for s in settings.sinks]
    base = _base_event(template)
    inbox = open_inbox(settings)
    await inbox.open()
    try:
        started = time.perf_counter()
        for start in range(0, count, CHUNK):
            stop = min(count, start + CHUNK)
            await asyncio.gather(
                *(inbox.store(_variant(base, template, first_serial + i, orders)) for i in range(start, stop))
            )
            if progress and start and start % 100_000 < CHUNK:
                print(f"    prefill: {start:,} stored", flush=True)
        stored = time.perf_counter() - started
        started = time.perf_counter()
        while settle and sinks:
            claims = await inbox.claim_due(
                owner="bench-prefill", sinks=sinks, limit=4096, lease=3600, stale_kinds=frozenset()
            )
            if not claims:
                break
            now = time.time()
            done = AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, started_at=now, duration=0.001)
            await asyncio.gather(*(inbox.finish(claim, done) for claim in claims))
        settled = time.perf_counter() - started
    finally:
        await inbox.close()
    return PrefillResult(count, round(stored, 2), round(settled, 2), db_bytes(db))


def stored_and_pending(config: Path) -> tuple[int, int]:
    """Events stored so far and those some sink still has to get (read while the server runs)."""

    async def count() -> tuple[int, int]:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            counts = await inbox.count_by_status()
        finally:
            await inbox.close()
        # "quarantined" counts quarantine entries, not events.
        return sum(v for k, v in counts.items() if k != "quarantined"), int(counts["pending"])

    return asyncio.run(count())


def pending_events(config: Path) -> int:
    """Events some sink still has to get (read from another process while the server runs)."""

    async def count() -> int:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            return int((await inbox.count_by_status())["pending"])
        finally:
            await inbox.close()

    return asyncio.run(count())
