"""Delivery state: claims with leases, per-key FIFO, stale states, settling, replay.

Every rule runs inside one writer transaction, so a claim, a supersede decision and the event's
summed-up status change together or not at all.

Per-key FIFO: only the *head* of a (sink, key) — its oldest pending delivery — can be claimed.
A later event of that key waits while the head is in flight, backing off or parked, and moves up
once the head is delivered, dead, superseded or skipped. Events without a key are not ordered.
The head rule is checked on every claim; the ``blocked`` flag only keeps deliveries that wait
behind a head out of the ready index, and is cleared for the next one whenever a head settles.

SQLite runs one writer at a time. On PostgreSQL several receivers and workers write at once,
and the same rules hold through three things written here as ``/*pg …*/`` clauses:

- claims lock the rows they take (``FOR UPDATE SKIP LOCKED``): two dispatchers never take the
  same delivery, and neither waits for the other;
- the head rule is read in the claiming statement's snapshot, in which the head is pending until
  its settle has committed, so the next event of a key is never claimed while the one before it
  is in flight;
- the event row is locked before its status is summed up (``_lock_event``), so the summary sees
  every delivery settled by a transaction that held the lock before.
"""

from __future__ import annotations

from collections.abc import Sequence

from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import EventNotFound
from tcwebhook.inbox.base import (
    AttemptOutcome,
    AttemptResult,
    Claim,
    DeliveryStatus,
    EventClaim,
    ReplayResult,
    StoredEvent,
)
from tcwebhook.inbox.ids import to_datetime
from tcwebhook.inbox.rows import EVENT_COLUMNS, event_from_row
from tcwebhook.inbox.rules.unknown import reclassify
from tcwebhook.inbox.tx import Tx

_UNBLOCK_NEXT = """
UPDATE deliveries SET blocked = 0
WHERE sink = ? AND blocked = 1 AND seq = (
    SELECT seq FROM deliveries /*sqlite INDEXED BY deliveries_head */
    WHERE sink = ? AND key = ? AND status = 'pending' ORDER BY seq LIMIT 1)
"""
_LOCK_EVENT = "SELECT 1 FROM events WHERE seq = ? /*pg FOR NO KEY UPDATE */"
_STATUS_OF_DELIVERIES = """
UPDATE events SET status = (
    SELECT CASE
        WHEN sum(CASE WHEN d.status = 'pending' THEN 1 ELSE 0 END) > 0 THEN 'pending'
        WHEN sum(CASE WHEN d.status = 'dead' THEN 1 ELSE 0 END) > 0 THEN 'dead'
        WHEN sum(CASE WHEN d.status = 'unrecognised' THEN 1 ELSE 0 END) > 0 THEN 'unrecognised'
        WHEN sum(CASE WHEN d.status = 'delivered' THEN 1 ELSE 0 END) > 0 THEN 'delivered'
        WHEN sum(CASE WHEN d.status = 'superseded' THEN 1 ELSE 0 END) > 0 THEN 'superseded'
        ELSE 'stored' END
    FROM deliveries AS d WHERE d.seq = events.seq)
"""
_REFRESH_STATUS = _STATUS_OF_DELIVERIES + "WHERE seq = ?"
_REFRESH_STATUSES = _STATUS_OF_DELIVERIES + "WHERE seq IN INTS(?)"
_EARLIER_PENDING = (
    "SELECT 1 FROM deliveries /*sqlite INDEXED BY deliveries_head */"
    " WHERE sink = ? AND key = ? AND status = 'pending' AND seq < ? LIMIT 1"
)
_WATERMARK = "SELECT updated_us FROM watermarks WHERE sink = ? AND key = ? AND kind = ?"
# An attempt's number counts on across replays (a replay starts the retry count of the delivery
# afresh, not its history): one more than the last recorded for the delivery.
_INSERT_ATTEMPT = (
    "INSERT INTO attempts (seq, sink, number, started_at, duration, outcome, error)"
    " SELECT ?, ?, COALESCE(max(number), 0) + 1, ?, ?, ?, ? FROM attempts WHERE seq = ? AND sink = ?"
)
# Deliveries taken for their first attempt since they were stored or replayed, that have attempts
# recorded already: replays (the latency metric leaves them out).
_REPLAYED = "SELECT DISTINCT seq, sink FROM attempts WHERE seq IN INTS(?)"
_CLAIM = (
    "UPDATE deliveries SET claim_owner = ?, claim_expires = ?, attempts = attempts + 1, updated_at = ?"
    " WHERE (seq, sink) IN (SELECT CAST(value ->> 0 AS BIGINT), value ->> 1 FROM ROWS(?))"
)
_SUPERSEDE = (
    "UPDATE deliveries SET status = 'superseded', claim_owner = NULL, claim_expires = NULL,"
    " last_error = ?, force = 0, updated_at = ? WHERE seq = ? AND sink = ?"
)
_DUE = """
SELECT d.seq, d.sink, d.attempts, d.claim_owner, d.claim_expires, d.force, e.kind, e.key, e.updated_us
FROM deliveries AS d /*sqlite INDEXED BY deliveries_due */ JOIN events AS e ON e.seq = d.seq
WHERE d.status = 'pending' AND d.blocked = 0 AND d.next_attempt_at <= ?
  AND d.sink IN TEXTS(?)
  AND (d.claim_expires IS NULL OR d.claim_expires <= ?)
  AND (d.key IS NULL OR NOT EXISTS (
        SELECT 1 FROM deliveries AS p /*sqlite INDEXED BY deliveries_head */
        WHERE p.sink = d.sink AND p.key = d.key AND p.status = 'pending' AND p.seq < d.seq))
ORDER BY d.next_attempt_at
LIMIT ?
/*pg FOR UPDATE OF d SKIP LOCKED */
"""
_EVENT_DELIVERIES = (
    "SELECT sink, status, attempts, claim_owner, claim_expires, force FROM deliveries"
    " WHERE seq = ? ORDER BY sink /*pg FOR UPDATE */"
)
_REQUEUE = (
    "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,"
    " last_error = NULL, force = ?, claim_owner = NULL, claim_expires = NULL,"
    " blocked = CASE WHEN key IS NOT NULL AND EXISTS ("
    "   SELECT 1 FROM deliveries AS p /*sqlite INDEXED BY deliveries_head */"
    "   WHERE p.sink = deliveries.sink AND p.key = deliveries.key"
    "   AND p.status = 'pending' AND p.seq < deliveries.seq) THEN 1 ELSE 0 END,"
    " updated_at = ? WHERE seq = ? AND (claim_expires IS NULL OR claim_expires <= ?)"
)
# Settling, a whole batch in each statement: the batch's rows bound as one ``ROWS(?)``.
_FINISH_ROWS = """
UPDATE deliveries SET status = r.status, next_attempt_at = r.next_at, claim_owner = NULL,
    claim_expires = NULL, last_error = r.error, attempts = attempts - r.released,
    force = CASE WHEN r.status = 'pending' THEN force ELSE 0 END, updated_at = ?
FROM (SELECT CAST(value ->> 0 AS BIGINT) AS seq, value ->> 1 AS sink, value ->> 2 AS owner,
        value ->> 3 AS status, CAST(value ->> 4 AS DOUBLE PRECISION) AS next_at, value ->> 5 AS error,
        CAST(value ->> 6 AS INTEGER) AS released
      FROM ROWS(?)) AS r
WHERE deliveries.seq = r.seq AND deliveries.sink = r.sink AND deliveries.claim_owner = r.owner
RETURNING deliveries.seq, deliveries.sink
"""
_INSERT_ATTEMPTS = """
INSERT INTO attempts (seq, sink, number, started_at, duration, outcome, error)
SELECT r.seq, r.sink,
    COALESCE((SELECT max(a.number) FROM attempts AS a WHERE a.seq = r.seq AND a.sink = r.sink), 0) + 1,
    r.started_at, r.duration, r.outcome, r.error
FROM (SELECT CAST(value ->> 0 AS BIGINT) AS seq, value ->> 1 AS sink,
        CAST(value ->> 2 AS DOUBLE PRECISION) AS started_at, CAST(value ->> 3 AS DOUBLE PRECISION) AS duration,
        value ->> 4 AS outcome, value ->> 5 AS error
      FROM ROWS(?)) AS r
"""
_RAISE_WATERMARKS = """
INSERT INTO watermarks (sink, key, kind, updated_us, seq)
SELECT r.sink, e.key, e.kind, e.updated_us, e.seq
FROM (SELECT CAST(value ->> 0 AS BIGINT) AS seq, value ->> 1 AS sink FROM ROWS(?)) AS r
JOIN events AS e ON e.seq = r.seq
WHERE e.key IS NOT NULL AND e.updated_us IS NOT NULL
ON CONFLICT (sink, key, kind) DO UPDATE SET updated_us = excluded.updated_us, seq = excluded.seq
WHERE excluded.updated_us > watermarks.updated_us
"""
_UNBLOCK_NEXTS = """
UPDATE deliveries SET blocked = 0
WHERE blocked = 1 AND (seq, sink) IN (
    SELECT (SELECT p.seq FROM deliveries AS p /*sqlite INDEXED BY deliveries_head */
            WHERE p.sink = r.sink AND p.key = r.key AND p.status = 'pending' ORDER BY p.seq LIMIT 1), r.sink
    FROM (SELECT value ->> 0 AS sink, value ->> 1 AS key FROM ROWS(?)) AS r)
"""
_LOCK_EVENTS = "SELECT 1 FROM events WHERE seq IN INTS(?) ORDER BY seq /*pg FOR NO KEY UPDATE */"
_ADD_DELIVERY = (
    "INSERT INTO deliveries (seq, sink, key, status, next_attempt_at, force, blocked, updated_at)"
    " VALUES (?, ?, ?, 'pending', ?, ?, ?, ?) ON CONFLICT (seq, sink) DO NOTHING"
)


async def _lock_event(tx: Tx, seq: int) -> None:
    if tx.dialect.row_locks:
        await tx.send(_LOCK_EVENT, (seq,))


async def refresh_status(tx: Tx, seq: int) -> None:
    """Sum the event's deliveries up into its status (reads no result: pipeline-safe)."""
    await _lock_event(tx, seq)
    await tx.send(_REFRESH_STATUS, (seq,))


async def _settled(tx: Tx, seq: int, sink: str, key: str | None) -> None:
    """A delivery left ``pending``: the next one of its key moves up; the event's status follows.

    The next event of the key may be due now, so dispatchers are woken whether or not one was
    waiting (notifications are merged per transaction).
    """
    if key is not None:
        await tx.send(_UNBLOCK_NEXT, (sink, sink, key))
        await tx.notify()
    await refresh_status(tx, seq)


async def _stale_mark(
    tx: Tx,
    sink: str,
    key: str | None,
    kind: str,
    updated_us: int | None,
    force: int,
    stale_kinds: frozenset[EventKind],
) -> int | None:
    """The watermark this delivery is older than, or None when it is not stale."""
    if force or key is None or updated_us is None or kind not in stale_kinds:
        return None
    row = await tx.one(_WATERMARK, (sink, key, kind))
    if row is not None and updated_us < row[0]:
        return int(row[0])
    return None


async def _supersede(tx: Tx, seq: int, sink: str, key: str | None, attempts: int, mark: int, now: float) -> None:
    when = to_datetime(mark / 1_000_000).isoformat()
    error = f"superseded: a state of this key updated at {when} was already delivered"
    await tx.send(_SUPERSEDE, (error, now, seq, sink))
    await tx.send(_INSERT_ATTEMPT, (seq, sink, now, 0.0, AttemptOutcome.SUPERSEDED.value, error, seq, sink))
    await _settled(tx, seq, sink, key)


async def _abandoned(
    tx: Tx, seq: int, sink: str, previous_owner: str | None, previous_expiry: float | None, now: float
) -> None:
    """Keep a trace of the attempt a claimant that died or hung never finished (reads nothing)."""
    if previous_owner is not None:
        started = previous_expiry if previous_expiry is not None else now
        error = f"the lease of {previous_owner} ran out before it finished"
        await tx.send(_INSERT_ATTEMPT, (seq, sink, started, 0.0, AttemptOutcome.ABANDONED.value, error, seq, sink))


async def _take(tx: Tx, taken: Sequence[tuple[int, str]], owner: str, until: float, now: float) -> None:
    """Lease these (seq, sink) deliveries to ``owner``: one statement for all (reads nothing)."""
    if taken:
        await tx.send(_CLAIM, (owner, until, now, tx.dialect.rows(taken)))


async def _load_events(tx: Tx, seqs: Sequence[int]) -> dict[int, StoredEvent]:
    if not seqs:
        return {}
    sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq IN INTS(?)"  # noqa: S608
    return {row[0]: event_from_row(row) for row in await tx.all(sql, (tx.dialect.array(seqs),))}


async def _replayed(tx: Tx, first: Sequence[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which of these deliveries, claimed for the first time since stored or replayed, were replayed."""
    if not first:
        return set()
    found = await tx.all(_REPLAYED, (tx.dialect.array(sorted({seq for seq, _ in first})),))
    wanted = set(first)
    return {(int(r[0]), str(r[1])) for r in found} & wanted


async def claim_due(
    tx: Tx,
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
    names = tx.dialect.array(sinks)
    taken: list[tuple[int, str, int]] = []
    # Superseding a head frees the next delivery of its key at once: look again (bounded).
    for _ in range(8):
        rows = await tx.all(_DUE, (now, names, now, limit - len(taken)))
        if not rows:
            break
        first = len(taken)
        superseded = False
        marks = [await _stale_mark(tx, r[1], r[7], r[6], r[8], r[5], stale_kinds) for r in rows]
        # The writes read no result: one round trip for all of them.
        async with tx.batch():
            for (seq, sink, attempts, prev_owner, prev_expiry, _, _, key, _), mark in zip(rows, marks, strict=True):
                if mark is not None:
                    await _supersede(tx, seq, sink, key, attempts, mark, now)
                    superseded = True
                    continue
                await _abandoned(tx, seq, sink, prev_owner, prev_expiry, now)
                taken.append((seq, sink, attempts + 1))
            await _take(tx, [(seq, sink) for seq, sink, _ in taken[first:]], owner, until, now)
        if not superseded or len(taken) >= limit:
            break
    events = await _load_events(tx, sorted({seq for seq, _, _ in taken}))
    replayed = await _replayed(tx, [(seq, sink) for seq, sink, n in taken if n == 1])
    return [
        Claim(event=events[seq], sink=sink, attempt=n, owner=owner, replayed=(seq, sink) in replayed)
        for seq, sink, n in taken
    ]


async def claim_event(
    tx: Tx,
    event_id: str,
    *,
    owner: str,
    sinks: Sequence[str],
    lease: float,
    stale_kinds: frozenset[EventKind],
    now: float,
) -> EventClaim:
    row = await tx.one("SELECT seq, key, kind, updated_us FROM events WHERE event_id = ?", (event_id,))
    if row is None:
        raise EventNotFound(f"no event {event_id}")
    seq, key, kind, updated_us = row
    wanted = set(sinks)
    taken: list[tuple[str, int]] = []
    waiting: list[str] = []
    statuses: dict[str, str] = {}
    for sink, status, attempts, prev_owner, prev_expiry, force in await tx.all(_EVENT_DELIVERIES, (seq,)):
        if sink not in wanted:
            continue
        if status != DeliveryStatus.PENDING:
            statuses[sink] = status
            continue
        if prev_expiry is not None and prev_expiry > now:
            waiting.append(sink)  # in flight elsewhere
            continue
        if key is not None and await tx.one(_EARLIER_PENDING, (sink, key, seq)):
            waiting.append(sink)  # per-key FIFO: an earlier event of this key goes first
            continue
        mark = await _stale_mark(tx, sink, key, kind, updated_us, force, stale_kinds)
        if mark is not None:
            await _supersede(tx, seq, sink, key, attempts, mark, now)
            statuses[sink] = DeliveryStatus.SUPERSEDED
            continue
        await _abandoned(tx, seq, sink, prev_owner, prev_expiry, now)
        taken.append((sink, attempts + 1))
    await _take(tx, [(seq, s) for s, _ in taken], owner, now + lease, now)
    event = (await _load_events(tx, [seq]))[seq]
    replayed = await _replayed(tx, [(seq, s) for s, n in taken if n == 1])
    claims = tuple(
        Claim(event=event, sink=s, attempt=n, owner=owner, replayed=(seq, s) in replayed) for s, n in taken
    )
    return EventClaim(event=event, claims=claims, waiting=tuple(waiting), statuses=statuses)


async def finish(tx: Tx, claim: Claim, result: AttemptResult, now: float) -> bool:
    """Record the attempt and settle the delivery; False when the claim was no longer held."""
    (held,) = await finish_many(tx, [(claim, result)], now)
    return held


async def finish_many(tx: Tx, settles: Sequence[tuple[Claim, AttemptResult]], now: float) -> list[bool]:
    """``finish`` for each of a dispatcher's batch, in one transaction: one commit (one fsync or
    WAL flush) settles them all, each step one statement for the whole batch, and on PostgreSQL
    two round trips (the settles, then everything they move). A batch holds at most one delivery
    of each (sink, key), the heads the claim took, so the order within it does not matter for
    per-key FIFO; a batch that does not (no dispatcher makes one) is settled one by one."""
    keyed = [(c.sink, c.event.key) for c, _ in settles if c.event.key is not None]
    if len(set(keyed)) < len(keyed) or len({(c.event.seq, c.sink) for c, _ in settles}) < len(settles):
        return [(await finish_many(tx, [settle], now))[0] for settle in settles]
    rows = [
        (c.event.seq, c.sink, c.owner, r.status.value, r.next_attempt_at, r.error,
         int(r.outcome is AttemptOutcome.RELEASED))
        for c, r in settles
    ]
    kept = {(int(seq), str(sink)) for seq, sink in await tx.all(_FINISH_ROWS, (now, tx.dialect.rows(rows)))}
    held = [(c.event.seq, c.sink) in kept for c, _ in settles]
    attempts = [
        (c.event.seq, c.sink, r.started_at, r.duration, r.outcome.value, r.error)
        for c, r in settles
        if r.outcome is not None
    ]
    settled = [(c, r) for (c, r), kept_ in zip(settles, held, strict=True) if kept_]
    delivered = [(c.event.seq, c.sink) for c, r in settled if r.status is DeliveryStatus.DELIVERED]
    # A delivery that left ``pending`` moves the next one of its key up (see ``_settled``).
    moved = [(c.sink, c.event.key) for c, r in settled if r.status is not DeliveryStatus.PENDING and c.event.key]
    # A delivery released by a shutdown is due at once: another dispatcher may take it now.
    released = any(r.outcome is AttemptOutcome.RELEASED for c, r in settled if r.status is DeliveryStatus.PENDING)
    seqs = tx.dialect.array(sorted({c.event.seq for c, _ in settled}))
    async with tx.batch():
        if attempts:
            await tx.send(_INSERT_ATTEMPTS, (tx.dialect.rows(attempts),))
        if delivered:
            await tx.send(_RAISE_WATERMARKS, (tx.dialect.rows(delivered),))
        if moved:
            await tx.send(_UNBLOCK_NEXTS, (tx.dialect.rows(moved),))
        if moved or released:
            await tx.notify()
        if settled:
            if tx.dialect.row_locks:  # in seq order, so two batches settling at once cannot deadlock
                await tx.send(_LOCK_EVENTS, (seqs,))
            await tx.send(_REFRESH_STATUSES, (seqs,))
    return held


async def extend_leases(tx: Tx, claims: Sequence[Claim], lease: float, now: float) -> None:
    await tx.many(
        "UPDATE deliveries SET claim_expires = ? WHERE seq = ? AND sink = ? AND claim_owner = ?",
        [(now + lease, c.event.seq, c.sink, c.owner) for c in claims],
    )


async def replay(
    tx: Tx,
    event_ids: Sequence[str],
    *,
    sinks: Sequence[str],
    only_dead: bool,
    force: bool,
    now: float,
    sink: str | None = None,
    only_unrecognised: bool = False,
) -> ReplayResult:
    requeued = 0
    touched = 0
    reclassified = 0
    missing: list[str] = []
    requeue = _REQUEUE + (" AND status = 'dead'" if only_dead else "")
    requeue += " AND status = 'unrecognised'" if only_unrecognised else ""
    sink_args: tuple[str, ...] = ()
    if sink is not None:
        requeue += " AND sink = ?"
        sink_args = (sink,)
        sinks = [s for s in sinks if s == sink]
    for event_id in event_ids:
        row = await tx.one(
            "SELECT seq, key, kind FROM events WHERE event_id = ? /*pg FOR NO KEY UPDATE */", (event_id,)
        )
        if row is None:
            missing.append(event_id)
            continue
        seq, key, kind = row
        if kind == EventKind.UNKNOWN.value:
            known = await reclassify(tx, seq)
            if known is not None:
                key = known.key
                reclassified += 1
        # A delivery in flight is left alone: its claimant settles it.
        count = await tx.run(requeue, (now, int(force), now, seq, now, *sink_args))
        if not only_dead and not only_unrecognised:
            # Sinks configured after the event arrived get it too.
            for name in sinks:
                blocked = key is not None and bool(await tx.one(_EARLIER_PENDING, (name, key, seq)))
                count += await tx.run(_ADD_DELIVERY, (seq, name, key, now, int(force), int(blocked), now))
        if count:
            touched += 1
            requeued += count
            await refresh_status(tx, seq)
    if requeued:
        await tx.notify()
    return ReplayResult(requeued=requeued, events=touched, missing=tuple(missing), reclassified=reclassified)
