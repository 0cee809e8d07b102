"""Delivery state in PostgreSQL: the rules of ``inbox.sqlite_delivery``, safe across processes.

Every function runs inside one writer transaction (see ``inbox.postgres_writer``). SQLite runs
one writer at a time; here several receivers and workers write at once, so three things are
added to the same rules:

- Claims lock the rows they take (``FOR UPDATE SKIP LOCKED``): two dispatchers never take the
  same delivery, and neither waits for the other.
- The head rule (only the oldest pending delivery of a (sink, key) is claimable) is read in the
  claiming statement's snapshot, in which the head is pending until its settle has committed, so
  the next event of a key is never claimed while the one before it is in flight.
- A new delivery behind a pending one of its key is stored ``blocked``; the settle of that
  pending one unblocks the next. A store and a settle of the same key racing each other would
  each miss the other's uncommitted row and leave the new delivery blocked for good, so the store
  share-locks the pending row it saw (``FOR SHARE``): the settle's update then waits for the store
  to commit and its unblock statement, which runs after, sees the new row.

SQL text is built from constant fragments and "%s" placeholders only; every value is bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import EventNotFound
from tcwebhook.inbox.base import (
    AttemptOutcome,
    AttemptResult,
    Claim,
    DeliveryStatus,
    EventClaim,
    ReplayResult,
    SinkHealth,
    StoredEvent,
)
from tcwebhook.inbox.ids import to_datetime
from tcwebhook.inbox.rows import EVENT_COLUMNS, event_from_row

Conn = psycopg.AsyncConnection[Any]

# Wakes the dispatchers of every process (LISTEN); delivered at commit, once per transaction.
CHANNEL = "tcwebhook_due"
NOTIFY = f"SELECT pg_notify('{CHANNEL}', '')"

_KEY_BUSY = (
    "SELECT 1 FROM deliveries WHERE sink = %s AND key = %s AND status = 'pending' LIMIT 1 FOR SHARE"
)
_INSERT_DELIVERY = (
    "INSERT INTO deliveries (seq, sink, key, status, next_attempt_at, blocked, updated_at)"
    " VALUES (%s, %s, %s, 'pending', %s, %s, %s)"
)

_UNBLOCK_NEXT = """
UPDATE deliveries SET blocked = 0
WHERE sink = %s AND blocked = 1 AND seq = (
    SELECT seq FROM deliveries WHERE sink = %s AND key = %s AND status = 'pending' ORDER BY seq LIMIT 1)
"""

# The event row is locked first (its own statement) so the summary below, a later statement,
# sees every delivery settled by a transaction that held the lock before us.
_LOCK_EVENT = "SELECT 1 FROM events WHERE seq = %s FOR NO KEY UPDATE"
_REFRESH_STATUS = """
UPDATE events SET status = (
    SELECT CASE
        WHEN bool_or(d.status = 'pending') THEN 'pending'
        WHEN bool_or(d.status = 'dead') THEN 'dead'
        WHEN bool_or(d.status = 'delivered') THEN 'delivered'
        WHEN bool_or(d.status = 'superseded') THEN 'superseded'
        ELSE 'stored' END
    FROM deliveries AS d WHERE d.seq = events.seq)
WHERE seq = %s
"""

_EARLIER_PENDING = (
    "SELECT 1 FROM deliveries WHERE sink = %s AND key = %s AND status = 'pending' AND seq < %s LIMIT 1"
)

_WATERMARK = "SELECT updated_us FROM watermarks WHERE sink = %s AND key = %s AND kind = %s"

_RAISE_WATERMARK = """
INSERT INTO watermarks (sink, key, kind, updated_us, seq)
SELECT %s, key, kind, updated_us, seq FROM events
WHERE seq = %s AND key IS NOT NULL AND updated_us IS NOT NULL
ON CONFLICT (sink, key, kind) DO UPDATE SET updated_us = excluded.updated_us, seq = excluded.seq
WHERE excluded.updated_us > watermarks.updated_us
"""

_INSERT_ATTEMPT = (
    "INSERT INTO attempts (seq, sink, number, started_at, duration, outcome, error)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)

_CLAIM = (
    "UPDATE deliveries SET claim_owner = %s, claim_expires = %s, attempts = attempts + 1,"
    " updated_at = %s WHERE seq = %s AND sink = %s"
)

_DUE = """
SELECT d.seq, d.sink, d.attempts, d.claim_owner, d.claim_expires, d.force, e.kind, e.key, e.updated_us
FROM deliveries AS d JOIN events AS e ON e.seq = d.seq
WHERE d.status = 'pending' AND d.blocked = 0 AND d.next_attempt_at <= %s
  AND d.sink = ANY(%s)
  AND (d.claim_expires IS NULL OR d.claim_expires <= %s)
  AND (d.key IS NULL OR NOT EXISTS (
        SELECT 1 FROM deliveries AS p
        WHERE p.sink = d.sink AND p.key = d.key AND p.status = 'pending' AND p.seq < d.seq))
ORDER BY d.next_attempt_at
LIMIT %s
FOR UPDATE OF d SKIP LOCKED
"""



async def _one(conn: Conn, sql: str, params: Sequence[Any]) -> Any:
    cur = await conn.execute(sql, params)
    return await cur.fetchone()


async def _exec(conn: Conn, sql: str, params: Sequence[Any]) -> int:
    cur = await conn.execute(sql, params)
    return cur.rowcount


async def insert_deliveries(
    conn: Conn, seq: int, key: str | None, sinks: Sequence[str], next_at: float | None, now: float
) -> None:
    for sink in sinks:
        blocked = key is not None and await _one(conn, _KEY_BUSY, (sink, key)) is not None
        await _exec(conn, _INSERT_DELIVERY, (seq, sink, key, next_at, int(blocked), now))


async def refresh_status(conn: Conn, seq: int) -> None:
    await _exec(conn, _LOCK_EVENT, (seq,))
    await _exec(conn, _REFRESH_STATUS, (seq,))


async def _send(conn: Conn, sql: str, params: Sequence[Any] = ()) -> None:
    """A statement whose result nobody reads: in pipeline mode it costs no round trip of its own."""
    await conn.execute(sql, params)


async def _settled(conn: Conn, seq: int, sink: str, key: str | None) -> None:
    """A delivery left ``pending``: the next one of its key moves up; the event's status follows.

    Pipeline-safe (reads no result): the next event of the key may be due now, so dispatchers
    are woken whether or not one was waiting (notifications are merged per transaction).
    """
    if key is not None:
        await _send(conn, _UNBLOCK_NEXT, (sink, sink, key))
        await _send(conn, NOTIFY)
    await _send(conn, _LOCK_EVENT, (seq,))
    await _send(conn, _REFRESH_STATUS, (seq,))


async def _stale_mark(
    conn: Conn,
    sink: str,
    key: str | None,
    kind: str,
    updated_us: int | None,
    force: int,
    stale_kinds: frozenset[EventKind],
) -> int | None:
    if force or key is None or updated_us is None or kind not in stale_kinds:
        return None
    row = await _one(conn, _WATERMARK, (sink, key, kind))
    if row is not None and updated_us < row[0]:
        return int(row[0])
    return None


async def _supersede(
    conn: Conn, seq: int, sink: str, key: str | None, attempts: int, mark: int, now: float
) -> None:
    when = to_datetime(mark / 1_000_000).isoformat()
    error = f"superseded: a state of this key updated at {when} was already delivered"
    await _send(
        conn,
        "UPDATE deliveries SET status = 'superseded', claim_owner = NULL, claim_expires = NULL,"
        " last_error = %s, force = 0, updated_at = %s WHERE seq = %s AND sink = %s",
        (error, now, seq, sink),
    )
    await _send(conn, _INSERT_ATTEMPT, (seq, sink, attempts + 1, now, 0.0, AttemptOutcome.SUPERSEDED.value, error))
    await _settled(conn, seq, sink, key)


async def _take(
    conn: Conn,
    seq: int,
    sink: str,
    attempts: int,
    previous_owner: str | None,
    previous_expiry: float | None,
    owner: str,
    until: float,
    now: float,
) -> None:
    if previous_owner is not None:
        # The claimant died or hung: keep a trace of the attempt it never finished.
        await _send(
            conn,
            _INSERT_ATTEMPT,
            (
                seq,
                sink,
                attempts,
                previous_expiry if previous_expiry is not None else now,
                0.0,
                AttemptOutcome.ABANDONED.value,
                f"the lease of {previous_owner} ran out before it finished",
            ),
        )
    await _send(conn, _CLAIM, (owner, until, now, seq, sink))


async def _load_events(conn: Conn, seqs: Sequence[int]) -> dict[int, StoredEvent]:
    if not seqs:
        return {}
    sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = ANY(%s)"  # noqa: S608
    cur = await conn.execute(sql, (list(seqs),))
    return {row[0]: event_from_row(row) for row in await cur.fetchall()}


async def claim_due(
    conn: Conn,
    *,
    owner: str,
    sinks: Sequence[str],
    limit: int,
    lease: float,
    stale_kinds: frozenset[EventKind],
    now: float,
) -> list[Claim]:
    if not sinks or limit <= 0:
        return []
    until = now + lease
    names = list(sinks)
    taken: list[tuple[int, str, int]] = []
    # Superseding a head frees the next delivery of its key at once: look again (bounded).
    for _ in range(8):
        cur = await conn.execute(_DUE, (now, names, now, limit - len(taken)))
        rows = await cur.fetchall()
        if not rows:
            break
        superseded = False
        marks = [await _stale_mark(conn, r[1], r[7], r[6], r[8], r[5], stale_kinds) for r in rows]
        # The writes read no result: one round trip for all of them.
        async with conn.pipeline():
            for (seq, sink, attempts, prev_owner, prev_expiry, _, _, key, _), mark in zip(rows, marks, strict=True):
                if mark is not None:
                    await _supersede(conn, seq, sink, key, attempts, mark, now)
                    superseded = True
                    continue
                await _take(conn, seq, sink, attempts, prev_owner, prev_expiry, owner, until, now)
                taken.append((seq, sink, attempts + 1))
        if not superseded or len(taken) >= limit:
            break
    events = await _load_events(conn, sorted({seq for seq, _, _ in taken}))
    return [Claim(event=events[seq], sink=sink, attempt=n, owner=owner) for seq, sink, n in taken]


async def claim_event(
    conn: Conn,
    event_id: str,
    *,
    owner: str,
    sinks: Sequence[str],
    lease: float,
    stale_kinds: frozenset[EventKind],
    now: float,
) -> EventClaim:
    row = await _one(conn, "SELECT seq, key, kind, updated_us FROM events WHERE event_id = %s", (event_id,))
    if row is None:
        raise EventNotFound(f"no event {event_id}")
    seq, key, kind, updated_us = row
    wanted = set(sinks)
    taken: list[tuple[str, int]] = []
    waiting: list[str] = []
    statuses: dict[str, str] = {}
    cur = await conn.execute(
        "SELECT sink, status, attempts, claim_owner, claim_expires, force FROM deliveries"
        " WHERE seq = %s ORDER BY sink FOR UPDATE",
        (seq,),
    )
    for sink, status, attempts, prev_owner, prev_expiry, force in await cur.fetchall():
        if sink not in wanted:
            continue
        if status != DeliveryStatus.PENDING:
            statuses[sink] = status
            continue
        if prev_expiry is not None and prev_expiry > now:
            waiting.append(sink)  # in flight elsewhere
            continue
        if key is not None and await _one(conn, _EARLIER_PENDING, (sink, key, seq)):
            waiting.append(sink)  # per-key FIFO: an earlier event of this key goes first
            continue
        mark = await _stale_mark(conn, sink, key, kind, updated_us, force, stale_kinds)
        if mark is not None:
            await _supersede(conn, seq, sink, key, attempts, mark, now)
            statuses[sink] = DeliveryStatus.SUPERSEDED
            continue
        await _take(conn, seq, sink, attempts, prev_owner, prev_expiry, owner, now + lease, now)
        taken.append((sink, attempts + 1))
    event = (await _load_events(conn, [seq]))[seq]
    claims = tuple(Claim(event=event, sink=s, attempt=n, owner=owner) for s, n in taken)
    return EventClaim(event=event, claims=claims, waiting=tuple(waiting), statuses=statuses)


async def finish(conn: Conn, claim: Claim, result: AttemptResult, now: float) -> bool:
    seq = claim.event.seq
    released = result.outcome is AttemptOutcome.RELEASED
    held = await _exec(
        conn,
        "UPDATE deliveries SET status = %s, next_attempt_at = %s, claim_owner = NULL,"
        " claim_expires = NULL, last_error = %s, attempts = attempts - %s,"
        " force = CASE WHEN %s = 'pending' THEN force ELSE 0 END, updated_at = %s"
        " WHERE seq = %s AND sink = %s AND claim_owner = %s",
        (
            result.status.value,
            result.next_attempt_at,
            result.error,
            1 if released else 0,
            result.status.value,
            now,
            seq,
            claim.sink,
            claim.owner,
        ),
    )
    # The rest reads no result: one round trip for all of it.
    async with conn.pipeline():
        if result.outcome is not None:
            await _send(
                conn,
                _INSERT_ATTEMPT,
                (
                    seq,
                    claim.sink,
                    claim.attempt,
                    result.started_at,
                    result.duration,
                    result.outcome.value,
                    result.error,
                ),
            )
        if held != 1:
            return False
        if result.status is DeliveryStatus.DELIVERED:
            await _send(conn, _RAISE_WATERMARK, (claim.sink, seq))
        if result.status is DeliveryStatus.PENDING:
            if released:
                await _send(conn, NOTIFY)  # another dispatcher may take it at once
            await _send(conn, _LOCK_EVENT, (seq,))
            await _send(conn, _REFRESH_STATUS, (seq,))
        else:
            await _settled(conn, seq, claim.sink, claim.event.key)
    return True


async def extend_leases(conn: Conn, claims: Sequence[Claim], until: float) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "UPDATE deliveries SET claim_expires = %s WHERE seq = %s AND sink = %s AND claim_owner = %s",
            [(until, c.event.seq, c.sink, c.owner) for c in claims],
        )


async def replay(
    conn: Conn,
    event_ids: Sequence[str],
    *,
    sinks: Sequence[str],
    only_dead: bool,
    force: bool,
    now: float,
    sink: str | None = None,
) -> ReplayResult:
    requeued = 0
    touched = 0
    missing: list[str] = []
    only = " AND status = 'dead'" if only_dead else ""
    sink_args: tuple[str, ...] = ()
    if sink is not None:
        only += " AND sink = %s"
        sink_args = (sink,)
        sinks = [s for s in sinks if s == sink]
    for event_id in event_ids:
        row = await _one(conn, "SELECT seq, key FROM events WHERE event_id = %s FOR NO KEY UPDATE", (event_id,))
        if row is None:
            missing.append(event_id)
            continue
        seq, key = row
        # A delivery in flight is left alone: its claimant settles it.
        count = await _exec(
            conn,
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = %s,"  # noqa: S608
            " last_error = NULL, force = %s, claim_owner = NULL, claim_expires = NULL,"
            " blocked = CASE WHEN key IS NOT NULL AND EXISTS (SELECT 1 FROM deliveries AS p"
            "   WHERE p.sink = deliveries.sink AND p.key = deliveries.key"
            "   AND p.status = 'pending' AND p.seq < deliveries.seq) THEN 1 ELSE 0 END,"
            " updated_at = %s WHERE seq = %s AND (claim_expires IS NULL OR claim_expires <= %s)" + only,
            (now, int(force), now, seq, now, *sink_args),
        )
        if not only_dead:
            # Sinks configured after the event arrived get it too.
            for name in sinks:
                blocked = key is not None and bool(await _one(conn, _EARLIER_PENDING, (name, key, seq)))
                count += await _exec(
                    conn,
                    "INSERT INTO deliveries (seq, sink, key, status, next_attempt_at,"
                    " force, blocked, updated_at) VALUES (%s, %s, %s, 'pending', %s, %s, %s, %s)"
                    " ON CONFLICT (seq, sink) DO NOTHING",
                    (seq, name, key, now, int(force), int(blocked), now),
                )
        if count:
            touched += 1
            requeued += count
            await refresh_status(conn, seq)
    if requeued:
        await _exec(conn, NOTIFY, ())
    return ReplayResult(requeued=requeued, events=touched, missing=tuple(missing))


_LAST_ATTEMPT = (
    "SELECT started_at, error FROM attempts WHERE sink = %s AND outcome = %s ORDER BY started_at DESC LIMIT 1"
)


async def sink_health(conn: Conn, sinks: Sequence[str]) -> list[SinkHealth]:
    """Backlog, dead letters and last outcomes per sink (as ``sqlite_delivery.sink_health``)."""
    cur = await conn.execute("SELECT DISTINCT sink FROM deliveries")
    known = [r[0] for r in await cur.fetchall()]
    found: list[SinkHealth] = []
    for name in sorted(set(sinks) | set(known)):
        backlog, oldest_seq = await _one(
            conn, "SELECT count(*), min(seq) FROM deliveries WHERE sink = %s AND status = 'pending'", (name,)
        )
        oldest = None
        if oldest_seq is not None:
            row = await _one(conn, "SELECT received_at FROM events WHERE seq = %s", (oldest_seq,))
            oldest = None if row is None else row[0]
        (dead,) = await _one(conn, "SELECT count(*) FROM deliveries WHERE sink = %s AND status = 'dead'", (name,))
        if name not in sinks and not backlog and not dead:
            continue  # a sink removed from the config, with nothing left to act on
        success = await _one(conn, _LAST_ATTEMPT, (name, AttemptOutcome.DELIVERED.value))
        errors = [
            row
            for outcome in (AttemptOutcome.TRANSIENT, AttemptOutcome.PERMANENT, AttemptOutcome.ABANDONED)
            if (row := await _one(conn, _LAST_ATTEMPT, (name, outcome.value))) is not None
        ]
        error = max(errors, default=None, key=lambda row: float(row[0]))
        found.append(
            SinkHealth(
                sink=name,
                backlog=int(backlog),
                oldest_pending_at=None if oldest is None else to_datetime(oldest),
                dead=int(dead),
                last_success_at=None if success is None else to_datetime(success[0]),
                last_error_at=None if error is None else to_datetime(error[0]),
                last_error=None if error is None else error[1],
            )
        )
    return found
