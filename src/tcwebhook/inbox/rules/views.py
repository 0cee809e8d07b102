"""The read side: events, deliveries and attempts, the quarantine, the operator's figures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tcwebhook.errors import EventNotFound
from tcwebhook.inbox.base import (
    Attempt,
    AttemptOutcome,
    Delivery,
    EventFilter,
    EventStatus,
    QuarantineEntry,
    SinkHealth,
    StoredEvent,
)
from tcwebhook.inbox.ids import to_datetime
from tcwebhook.inbox.rows import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    QUARANTINE_COLUMNS,
    attempt_from_row,
    delivery_from_row,
    event_from_row,
    listing,
    quarantine_from_row,
)
from tcwebhook.inbox.schema import COUNTED
from tcwebhook.inbox.tx import Tx

_OF_EVENT = " WHERE seq = (SELECT seq FROM events WHERE event_id = ?)"
# SQLite keeps the counts in a table (schema version 3); PostgreSQL counts (see inbox.schema).
_EVENT_COUNTS = (
    "/*sqlite SELECT status, n FROM event_counts */ /*pg SELECT status, count(*) FROM events GROUP BY status */"
)
_BUCKET = "/*sqlite CAST(received_at / ? AS INTEGER) */ /*pg floor(received_at / ?)::bigint */"
_LAST_ATTEMPT = (
    "SELECT started_at, error FROM attempts WHERE sink = ? AND outcome = ? ORDER BY started_at DESC LIMIT 1"
)


async def get_event(tx: Tx, event_id: str) -> StoredEvent:
    row = await tx.one(f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?", (event_id,))  # noqa: S608
    if row is None:
        raise EventNotFound(f"no event {event_id}")
    return event_from_row(row)


async def list_events(tx: Tx, flt: EventFilter) -> list[StoredEvent]:
    sql, args = listing(flt, EVENT_COLUMNS, newest_first=True, postgres=tx.dialect.name == "pg")
    return [event_from_row(r) for r in await tx.all(sql, (*args, flt.limit))]


async def list_event_ids(tx: Tx, flt: EventFilter) -> list[str]:
    sql, args = listing(flt, "event_id", newest_first=False, postgres=tx.dialect.name == "pg")
    return [r[0] for r in await tx.all(sql, (*args, flt.limit))]


async def event_ids_starting(tx: Tx, prefix: str, limit: int) -> list[str]:
    # A range on the unique index of event_id (a LIKE would not use it on PostgreSQL).
    if not prefix:
        return []
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    sql = "SELECT event_id FROM events WHERE event_id >= ? AND event_id < ? ORDER BY event_id LIMIT ?"
    return [r[0] for r in await tx.all(sql, (prefix, upper, limit))]


async def deliveries(tx: Tx, event_id: str) -> list[Delivery]:
    sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries{_OF_EVENT} ORDER BY sink"  # noqa: S608
    return [delivery_from_row(r) for r in await tx.all(sql, (event_id,))]


async def attempts(tx: Tx, event_id: str) -> list[Attempt]:
    sql = f"SELECT {ATTEMPT_COLUMNS} FROM attempts{_OF_EVENT} ORDER BY id"  # noqa: S608
    return [attempt_from_row(r) for r in await tx.all(sql, (event_id,))]


async def pending_sinks(tx: Tx) -> list[str]:
    return [r[0] for r in await tx.all("SELECT DISTINCT sink FROM deliveries WHERE status = 'pending' ORDER BY sink")]


async def count_by_status(tx: Tx) -> dict[str, int]:
    counts = dict.fromkeys((s.value for s in EventStatus), 0)
    counts.update({str(r[0]): int(r[1]) for r in await tx.all(_EVENT_COUNTS)})
    row = await tx.one("SELECT count(*) FROM quarantine WHERE reprocessed_event_id IS NULL")
    counts["quarantined"] = int(row[0]) if row else 0
    return counts


async def event_statuses(tx: Tx) -> dict[str, int]:
    rows = await tx.all("SELECT status, count(*) FROM events GROUP BY status ORDER BY status")
    return {str(r[0]): int(r[1]) for r in rows}


async def table_rows(tx: Tx) -> dict[str, int]:
    """Rows per table, for ``tcwebhook db status``."""
    found: dict[str, int] = {}
    for table in COUNTED:
        row = await tx.one(f"SELECT count(*) FROM {table}")  # noqa: S608 - names from the schema
        found[table] = int(row[0]) if row else 0
    return found


async def arrivals(tx: Tx, since: datetime, bucket_seconds: int) -> list[tuple[datetime, int]]:
    width = max(int(bucket_seconds), 1)
    sql = f"SELECT {_BUCKET} AS bucket, count(*) FROM events WHERE received_at >= ? GROUP BY bucket ORDER BY bucket"  # noqa: S608
    return [(to_datetime(int(b) * width), int(n)) for b, n in await tx.all(sql, (width, since.timestamp()))]


async def sink_health(tx: Tx, sinks: Sequence[str]) -> list[SinkHealth]:
    """Backlog, dead letters and last outcomes per sink; each figure is one index range."""
    # Every sink that has deliveries: DISTINCT on the leading column of deliveries_sink skips
    # from one sink to the next instead of reading the rows.
    known = [r[0] for r in await tx.all("SELECT DISTINCT sink FROM deliveries")]
    found: list[SinkHealth] = []
    for name in sorted(set(sinks) | set(known)):
        pending = await tx.one(
            "SELECT count(*), min(seq) FROM deliveries WHERE sink = ? AND status = 'pending'", (name,)
        )
        backlog, oldest_seq = pending if pending else (0, None)
        oldest = None
        if oldest_seq is not None:
            row = await tx.one("SELECT received_at FROM events WHERE seq = ?", (oldest_seq,))
            oldest = None if row is None else row[0]
        row = await tx.one("SELECT count(*) FROM deliveries WHERE sink = ? AND status = 'dead'", (name,))
        dead = int(row[0]) if row else 0
        if name not in sinks and not backlog and not dead:
            continue  # a sink removed from the config, with nothing left to act on
        success = await tx.one(_LAST_ATTEMPT, (name, AttemptOutcome.DELIVERED.value))
        errors = [
            row
            for outcome in (AttemptOutcome.TRANSIENT, AttemptOutcome.PERMANENT, AttemptOutcome.ABANDONED)
            if (row := await tx.one(_LAST_ATTEMPT, (name, outcome.value))) is not None
        ]
        error = max(errors, default=None, key=lambda row: float(row[0]))
        found.append(
            SinkHealth(
                sink=name,
                backlog=int(backlog),
                oldest_pending_at=None if oldest is None else to_datetime(oldest),
                dead=dead,
                last_success_at=None if success is None else to_datetime(success[0]),
                last_error_at=None if error is None else to_datetime(error[0]),
                last_error=None if error is None else error[1],
            )
        )
    return found


async def get_quarantined(tx: Tx, quarantine_id: str) -> QuarantineEntry:
    row = await tx.one(f"SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id = ?", (quarantine_id,))  # noqa: S608
    if row is None:
        raise EventNotFound(f"no quarantine entry {quarantine_id}")
    return quarantine_from_row(row)


async def list_quarantined(tx: Tx, limit: int) -> list[QuarantineEntry]:
    sql = f"SELECT {QUARANTINE_COLUMNS} FROM quarantine ORDER BY received_at DESC, id DESC LIMIT ?"  # noqa: S608
    return [quarantine_from_row(r) for r in await tx.all(sql, (limit,))]
