"""Delivery state in SQLite: claims with leases, per-key FIFO, stale states, settling.

Every function here runs inside the writer's transaction (see ``inbox.writer``), so a claim, a
supersede decision and the event's summed-up status change together or not at all.

Per-key FIFO: only the *head* of a (sink, key) — its oldest pending delivery — can be claimed.
A later event of that key waits while the head is in flight, backing off or parked, and moves up
once the head is delivered, dead, superseded or skipped. Events without a key are not ordered.
The head rule is checked on every claim; the ``blocked`` flag only keeps deliveries that wait
behind a head out of the ready index, and is cleared for the next one whenever a head settles.

SQL text is built from constant fragments and "?" placeholders only (hence the S608 exemptions).
"""

from __future__ import annotations

import sqlite3
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
    SinkHealth,
    StoredEvent,
)
from tcwebhook.inbox.ids import to_datetime
from tcwebhook.inbox.rows import EVENT_COLUMNS, event_from_row

INSERT_DELIVERY = (
    "INSERT INTO deliveries (seq, sink, key, status, next_attempt_at, blocked, updated_at)"
    " VALUES (?, ?, ?, 'pending', ?, ?, ?)"
)
# Any pending delivery of the key means a new (newest) one waits behind it.
KEY_BUSY = "SELECT 1 FROM deliveries WHERE sink = ? AND key = ? AND status = 'pending' LIMIT 1"

_UNBLOCK_NEXT = """
UPDATE deliveries SET blocked = 0
WHERE sink = ? AND blocked = 1 AND seq = (
    SELECT seq FROM deliveries WHERE sink = ? AND key = ? AND status = 'pending' ORDER BY seq LIMIT 1)
"""

_REFRESH_STATUS = """
UPDATE events SET status = (
    SELECT CASE
        WHEN sum(d.status = 'pending') > 0 THEN 'pending'
        WHEN sum(d.status = 'dead') > 0 THEN 'dead'
        WHEN sum(d.status = 'delivered') > 0 THEN 'delivered'
        WHEN sum(d.status = 'superseded') > 0 THEN 'superseded'
        ELSE 'stored' END
    FROM deliveries AS d WHERE d.seq = events.seq)
WHERE seq = ?
"""

_EARLIER_PENDING = (
    "SELECT 1 FROM deliveries WHERE sink = ? AND key = ? AND status = 'pending' AND seq < ? LIMIT 1"
)

_WATERMARK = "SELECT updated_us FROM watermarks WHERE sink = ? AND key = ? AND kind = ?"

_RAISE_WATERMARK = """
INSERT INTO watermarks (sink, key, kind, updated_us, seq)
SELECT ?, key, kind, updated_us, seq FROM events
WHERE seq = ? AND key IS NOT NULL AND updated_us IS NOT NULL
ON CONFLICT (sink, key, kind) DO UPDATE SET updated_us = excluded.updated_us, seq = excluded.seq
WHERE excluded.updated_us > watermarks.updated_us
"""

_INSERT_ATTEMPT = (
    "INSERT INTO attempts (seq, sink, number, started_at, duration, outcome, error)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)

_CLAIM = (
    "UPDATE deliveries SET claim_owner = ?, claim_expires = ?, attempts = attempts + 1,"
    " updated_at = ? WHERE seq = ? AND sink = ?"
)


_DUE = """
SELECT d.seq, d.sink, d.attempts, d.claim_owner, d.claim_expires, d.force, e.kind, e.key, e.updated_us
FROM deliveries AS d INDEXED BY deliveries_due JOIN events AS e ON e.seq = d.seq
WHERE d.status = 'pending' AND d.blocked = 0 AND d.next_attempt_at <= ?
  AND d.sink IN ({marks})
  AND (d.claim_expires IS NULL OR d.claim_expires <= ?)
  AND (d.key IS NULL OR NOT EXISTS (
        SELECT 1 FROM deliveries AS p
        WHERE p.sink = d.sink AND p.key = d.key AND p.status = 'pending' AND p.seq < d.seq))
ORDER BY d.next_attempt_at
LIMIT ?
"""


def _due_sql(sink_count: int) -> str:
    return _DUE.replace("{marks}", ", ".join("?" * sink_count))


def refresh_status(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute(_REFRESH_STATUS, (seq,))


def _settled(conn: sqlite3.Connection, seq: int, sink: str, key: str | None) -> None:
    """A delivery left ``pending``: the next one of its key moves up; the event's status follows."""
    if key is not None:
        conn.execute(_UNBLOCK_NEXT, (sink, sink, key))
    refresh_status(conn, seq)


def _stale_mark(
    conn: sqlite3.Connection,
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
    row = conn.execute(_WATERMARK, (sink, key, kind)).fetchone()
    if row is not None and updated_us < row[0]:
        return int(row[0])
    return None


def _supersede(
    conn: sqlite3.Connection,
    seq: int,
    sink: str,
    key: str | None,
    attempts: int,
    mark: int,
    now: float,
) -> None:
    when = to_datetime(mark / 1_000_000).isoformat()
    error = f"superseded: a state of this key updated at {when} was already delivered"
    conn.execute(
        "UPDATE deliveries SET status = 'superseded', claim_owner = NULL, claim_expires = NULL,"
        " last_error = ?, force = 0, updated_at = ? WHERE seq = ? AND sink = ?",
        (error, now, seq, sink),
    )
    conn.execute(_INSERT_ATTEMPT, (seq, sink, attempts + 1, now, 0.0, AttemptOutcome.SUPERSEDED, error))
    _settled(conn, seq, sink, key)


def _take(
    conn: sqlite3.Connection,
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
        conn.execute(
            _INSERT_ATTEMPT,
            (
                seq,
                sink,
                attempts,
                previous_expiry if previous_expiry is not None else now,
                0.0,
                AttemptOutcome.ABANDONED,
                f"the lease of {previous_owner} ran out before it finished",
            ),
        )
    conn.execute(_CLAIM, (owner, until, now, seq, sink))


def _load_events(conn: sqlite3.Connection, seqs: Sequence[int]) -> dict[int, StoredEvent]:
    if not seqs:
        return {}
    marks = ", ".join("?" * len(seqs))
    sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq IN ({marks})"  # noqa: S608
    rows = conn.execute(sql, tuple(seqs))
    return {row[0]: event_from_row(row) for row in rows}


def claim_due(
    conn: sqlite3.Connection,
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
    sql = _due_sql(len(sinks))
    until = now + lease
    taken: list[tuple[int, str, int]] = []
    # Superseding a head frees the next delivery of its key at once: look again (bounded).
    for _ in range(8):
        rows = conn.execute(sql, (now, *sinks, now, limit - len(taken))).fetchall()
        superseded = False
        for seq, sink, attempts, prev_owner, prev_expiry, force, kind, key, updated_us in rows:
            mark = _stale_mark(conn, sink, key, kind, updated_us, force, stale_kinds)
            if mark is not None:
                _supersede(conn, seq, sink, key, attempts, mark, now)
                superseded = True
                continue
            _take(conn, seq, sink, attempts, prev_owner, prev_expiry, owner, until, now)
            taken.append((seq, sink, attempts + 1))
        if not superseded or len(taken) >= limit:
            break
    events = _load_events(conn, sorted({seq for seq, _, _ in taken}))
    return [Claim(event=events[seq], sink=sink, attempt=n, owner=owner) for seq, sink, n in taken]


def claim_event(
    conn: sqlite3.Connection,
    event_id: str,
    *,
    owner: str,
    sinks: Sequence[str],
    lease: float,
    stale_kinds: frozenset[EventKind],
    now: float,
) -> EventClaim:
    row = conn.execute(
        "SELECT seq, key, kind, updated_us FROM events WHERE event_id = ?", (event_id,)
    ).fetchone()
    if row is None:
        raise EventNotFound(f"no event {event_id}")
    seq, key, kind, updated_us = row
    wanted = set(sinks)
    taken: list[tuple[str, int]] = []
    waiting: list[str] = []
    statuses: dict[str, str] = {}
    deliveries = conn.execute(
        "SELECT sink, status, attempts, claim_owner, claim_expires, force FROM deliveries"
        " WHERE seq = ? ORDER BY sink",
        (seq,),
    ).fetchall()
    for sink, status, attempts, prev_owner, prev_expiry, force in deliveries:
        if sink not in wanted:
            continue
        if status != DeliveryStatus.PENDING:
            statuses[sink] = status
            continue
        if prev_expiry is not None and prev_expiry > now:
            waiting.append(sink)  # in flight elsewhere
            continue
        if key is not None and conn.execute(_EARLIER_PENDING, (sink, key, seq)).fetchone():
            waiting.append(sink)  # per-key FIFO: an earlier event of this key goes first
            continue
        mark = _stale_mark(conn, sink, key, kind, updated_us, force, stale_kinds)
        if mark is not None:
            _supersede(conn, seq, sink, key, attempts, mark, now)
            statuses[sink] = DeliveryStatus.SUPERSEDED
            continue
        _take(conn, seq, sink, attempts, prev_owner, prev_expiry, owner, now + lease, now)
        taken.append((sink, attempts + 1))
    event = _load_events(conn, [seq])[seq]
    claims = tuple(Claim(event=event, sink=s, attempt=n, owner=owner) for s, n in taken)
    return EventClaim(event=event, claims=claims, waiting=tuple(waiting), statuses=statuses)


def finish(conn: sqlite3.Connection, claim: Claim, result: AttemptResult, now: float) -> bool:
    seq = claim.event.seq
    released = result.outcome is AttemptOutcome.RELEASED
    held = conn.execute(
        "UPDATE deliveries SET status = ?, next_attempt_at = ?, claim_owner = NULL,"
        " claim_expires = NULL, last_error = ?, attempts = attempts - ?,"
        " force = CASE WHEN ? = 'pending' THEN force ELSE 0 END, updated_at = ?"
        " WHERE seq = ? AND sink = ? AND claim_owner = ?",
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
    ).rowcount
    if result.outcome is not None:
        conn.execute(
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
        conn.execute(_RAISE_WATERMARK, (claim.sink, seq))
    if result.status is DeliveryStatus.PENDING:
        refresh_status(conn, seq)
    else:
        _settled(conn, seq, claim.sink, claim.event.key)
    return True


def extend_leases(conn: sqlite3.Connection, claims: Sequence[Claim], until: float) -> None:
    conn.executemany(
        "UPDATE deliveries SET claim_expires = ? WHERE seq = ? AND sink = ? AND claim_owner = ?",
        [(until, c.event.seq, c.sink, c.owner) for c in claims],
    )


def replay(
    conn: sqlite3.Connection,
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
        only += " AND sink = ?"
        sink_args = (sink,)
        sinks = [s for s in sinks if s == sink]
    for event_id in event_ids:
        row = conn.execute("SELECT seq, key FROM events WHERE event_id = ?", (event_id,)).fetchone()
        if row is None:
            missing.append(event_id)
            continue
        seq, key = row
        # A delivery in flight is left alone: its claimant settles it.
        count = conn.execute(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,"  # noqa: S608
            " last_error = NULL, force = ?, claim_owner = NULL, claim_expires = NULL,"
            " blocked = (key IS NOT NULL AND EXISTS (SELECT 1 FROM deliveries AS p"
            "   WHERE p.sink = deliveries.sink AND p.key = deliveries.key"
            "   AND p.status = 'pending' AND p.seq < deliveries.seq)),"
            " updated_at = ? WHERE seq = ? AND (claim_expires IS NULL OR claim_expires <= ?)"
            + only,
            (now, int(force), now, seq, now, *sink_args),
        ).rowcount
        if not only_dead:
            # Sinks configured after the event arrived get it too.
            for sink in sinks:
                blocked = key is not None and conn.execute(_EARLIER_PENDING, (sink, key, seq)).fetchone()
                count += conn.execute(
                    "INSERT OR IGNORE INTO deliveries (seq, sink, key, status, next_attempt_at,"
                    " force, blocked, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
                    (seq, sink, key, now, int(force), int(bool(blocked)), now),
                ).rowcount
        if count:
            touched += 1
            requeued += count
            refresh_status(conn, seq)
    return ReplayResult(requeued=requeued, events=touched, missing=tuple(missing))


_LAST_ATTEMPT = (
    "SELECT started_at, error FROM attempts WHERE sink = ? AND outcome = ? ORDER BY started_at DESC LIMIT 1"
)


def sink_health(conn: sqlite3.Connection, sinks: Sequence[str]) -> list[SinkHealth]:
    """Backlog, dead letters and last outcomes per sink; each figure is one index range."""
    # Every sink that has deliveries: DISTINCT on the leading column of deliveries_sink skips
    # from one sink to the next instead of reading the rows.
    known = [r[0] for r in conn.execute("SELECT DISTINCT sink FROM deliveries")]
    found: list[SinkHealth] = []
    for name in sorted(set(sinks) | set(known)):
        backlog, oldest_seq = conn.execute(
            "SELECT count(*), min(seq) FROM deliveries WHERE sink = ? AND status = 'pending'", (name,)
        ).fetchone()
        oldest = None
        if oldest_seq is not None:
            oldest = conn.execute("SELECT received_at FROM events WHERE seq = ?", (oldest_seq,)).fetchone()[0]
        dead = conn.execute(
            "SELECT count(*) FROM deliveries WHERE sink = ? AND status = 'dead'", (name,)
        ).fetchone()[0]
        if name not in sinks and not backlog and not dead:
            continue  # a sink removed from the config, with nothing left to act on
        success = conn.execute(_LAST_ATTEMPT, (name, AttemptOutcome.DELIVERED.value)).fetchone()
        errors = [
            row
            for outcome in (AttemptOutcome.TRANSIENT, AttemptOutcome.PERMANENT, AttemptOutcome.ABANDONED)
            if (row := conn.execute(_LAST_ATTEMPT, (name, outcome.value)).fetchone()) is not None
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
