"""The PostgreSQL inbox: any number of receivers and workers, on any machines, on one database.

Writes go through ``PostgresWriter`` (group commit on one connection per process); ``store``
returns only once its transaction's ``COMMIT`` returned with ``synchronous_commit`` at least
``on``. Reads use a small connection pool. Dispatchers of every process are woken through
``LISTEN/NOTIFY`` when a commit makes deliveries due (``subscribe``); their polling stays as the
fallback, so a lost notification (a reconnect) only delays delivery by one poll interval.

Any trouble of the database — down, restarting, failing over, read-only, out of connections, a
statement timeout — surfaces as ``StoreUnavailable`` (the receiver answers 503 with Retry-After)
and every connection is re-made on its next use, so the process recovers without a restart.

The rules of delivery state are those of the SQLite inbox; ``inbox.postgres_delivery`` says what
is added to keep them when several processes claim and settle at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tcwebhook.config import StoreSettings, redact_url
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import EventNotFound, StartupError, StoreError, StoreUnavailable
from tcwebhook.inbox import postgres_delivery as dpg
from tcwebhook.inbox.base import (
    Attempt,
    AttemptResult,
    Claim,
    Delivery,
    EventClaim,
    EventFilter,
    EventStatus,
    Inbox,
    KeyUpdate,
    NewEvent,
    QuarantineEntry,
    ReplayResult,
    SinkHealth,
    StoredEvent,
    StoreInfo,
    StoreResult,
)
from tcwebhook.inbox.ids import new_id, to_datetime, updated_micros
from tcwebhook.inbox.postgres_schema import SCHEMA_VERSION, TABLES, migrate, schema_version
from tcwebhook.inbox.postgres_writer import Bulk, PostgresWriter, unavailable
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

log = structlog.get_logger(__name__)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]

SCHEMES = ("postgresql://", "postgres://")

# One statement stores an event and its deliveries; a new delivery is blocked when a pending
# one of its key exists, which is share-locked (see ``inbox.postgres_delivery``).
_STORE = """
WITH ins AS (
    INSERT INTO events (event_id, dedupe_key, received_at, kind, event_name, status, key,
        order_id, shipment_id, purchase_order_number, shipment_number, message_id, last_updated_at,
        updated_us, content_type, headers, body)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING seq, key, received_at
), dl AS (
    INSERT INTO deliveries (seq, sink, key, status, next_attempt_at, blocked, updated_at)
    SELECT ins.seq, s.sink, ins.key, 'pending', %s::double precision,
        CASE WHEN ins.key IS NOT NULL AND EXISTS (
            SELECT 1 FROM deliveries AS p
            WHERE p.sink = s.sink AND p.key = ins.key AND p.status = 'pending'
            LIMIT 1 FOR SHARE) THEN 1 ELSE 0 END,
        ins.received_at
    FROM ins CROSS JOIN unnest(%s::text[]) AS s(sink)
)
SELECT seq FROM ins
"""
# Settled long enough ago (as ``inbox.sqlite.PRUNABLE``); rows another pruner holds are skipped.
_PRUNABLE = """
SELECT e.seq FROM events AS e
WHERE e.received_at < %s AND e.status IN ('delivered', 'superseded')
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.seq = e.seq AND (d.status IN ('pending', 'dead') OR d.updated_at >= %s))
ORDER BY e.received_at LIMIT %s
FOR UPDATE OF e SKIP LOCKED
"""
_EXISTING = "SELECT event_id, seq FROM events WHERE dedupe_key = %s"
_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (id, received_at, route, content_type, reason, status_code, headers, body)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


def is_postgres_url(url: str) -> bool:
    return url.lower().startswith(SCHEMES)


def conninfo(url: str, settings: StoreSettings) -> str:
    """The libpq connection string: the URL's own parameters win over our defaults."""
    given = conninfo_to_dict(url)
    defaults: dict[str, Any] = {
        "connect_timeout": max(2, math.ceil(settings.connect_timeout)),
        "application_name": "tcwebhook",
        # A dead peer (a fail-over without a reset) is noticed in seconds, not hours.
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }
    return make_conninfo(url, **{k: v for k, v in defaults.items() if k not in given})


def _headers_json(headers: Mapping[str, str]) -> bytes:
    import orjson

    if not headers:
        return b"{}"
    return orjson.dumps(headers if type(headers) is dict else dict(headers))


def _event_params(event: NewEvent, event_id: str, now: float, status: str) -> tuple[Any, ...]:
    return (
        event_id,
        event.dedupe_key,
        now,
        event.kind.value,
        event.event_name,
        status,
        event.key,
        event.order_id,
        event.shipment_id,
        event.purchase_order_number,
        event.shipment_number,
        event.message_id,
        event.last_updated_at,
        updated_micros(event.last_updated_at),
        event.content_type,
        _headers_json(event.headers),
        event.body,
    )


async def _store_event(
    conn: Conn, params: tuple[Any, ...], sinks: list[str], next_at: float | None
) -> StoreResult:
    cur = await conn.execute(_STORE, (*params, next_at, sinks))
    return await _stored(conn, await cur.fetchone(), params)


async def _stored(conn: Conn, row: tuple[Any, ...] | None, params: tuple[Any, ...]) -> StoreResult:
    if row is None:
        cur = await conn.execute(_EXISTING, (params[1],))
        existing = await cur.fetchone()
        if existing is None:  # the row we collided with was deleted (pruned) meanwhile
            raise StoreUnavailable("event store unavailable: a concurrent prune removed the event")
        return StoreResult(event_id=existing[0], seq=existing[1], duplicate=True)
    return StoreResult(event_id=params[0], seq=row[0], duplicate=False)


async def _after_store(conn: Conn, row: tuple[Any, ...] | None, *, params: tuple[Any, ...]) -> StoreResult:
    return await _stored(conn, row, params)


async def _reprocess(
    conn: Conn, quarantine_id: str, params: tuple[Any, ...], sinks: list[str], next_at: float | None
) -> StoreResult:
    cur = await conn.execute("SELECT 1 FROM quarantine WHERE id = %s FOR UPDATE", (quarantine_id,))
    if await cur.fetchone() is None:
        raise EventNotFound(f"no quarantine entry {quarantine_id}")
    result = await _store_event(conn, params, sinks, next_at)
    await conn.execute(
        "UPDATE quarantine SET reprocessed_event_id = %s WHERE id = %s", (result.event_id, quarantine_id)
    )
    return result


async def _store_reconciled(
    conn: Conn, params: tuple[Any, ...], sinks: list[str], next_at: float | None
) -> StoreResult:
    result = await _store_event(conn, params, sinks, next_at)
    if not result.duplicate:
        await conn.execute("INSERT INTO reconciled (seq) VALUES (%s)", (result.seq,))
    return result


async def _prune(conn: Conn, before: float, limit: int) -> int:
    cur = await conn.execute(_PRUNABLE, (before, before, limit))
    seqs = [row[0] for row in await cur.fetchall()]
    if seqs:
        # Deliveries go with their event (ON DELETE CASCADE); attempts have no foreign key.
        await conn.execute("DELETE FROM attempts WHERE seq = ANY(%s)", (seqs,))
        await conn.execute("DELETE FROM events WHERE seq = ANY(%s)", (seqs,))
    return len(seqs)


class PostgresInbox:
    """``Inbox`` on a PostgreSQL database; open it once per process, share it between tasks."""

    def __init__(
        self,
        url: str,
        settings: StoreSettings,
        *,
        sinks: Sequence[str] = (),
        hold_new: bool = False,
    ) -> None:
        self.url = url
        self._where = redact_url(url)
        self._settings = settings
        self._conninfo = conninfo(url, settings)
        self._sinks = list(sinks)
        self._new_status = EventStatus.PENDING.value if self._sinks else EventStatus.STORED.value
        self._hold_new = hold_new
        self._writer: PostgresWriter | None = None
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listeners: list[Callable[[], None]] = []
        self._listen_task: asyncio.Task[None] | None = None
        self._schema_found = SCHEMA_VERSION

    def retention(self) -> float | None:
        return self._settings.retention

    @property
    def sinks(self) -> tuple[str, ...]:
        return tuple(self._sinks)

    @property
    def commits(self) -> int:
        """Write transactions committed by this process."""
        return self._writer.commits if self._writer else 0

    @property
    def writes(self) -> int:
        return self._writer.operations if self._writer else 0

    # -- connections ---------------------------------------------------------------------------

    async def _configure(self, conn: Conn) -> None:
        await conn.set_autocommit(True)
        timeout_ms = int(self._settings.statement_timeout * 1000)
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, false), set_config('synchronous_commit', %s, false),"
            " set_config('lock_timeout', %s, false)",
            (str(timeout_ms), self._settings.synchronous_commit, str(timeout_ms)),
        )

    async def connect(self) -> Conn:
        """A new configured connection (autocommit; the writer opens its own transactions)."""
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        try:
            await self._configure(conn)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _first_connection(self) -> Conn:
        # A server that is starting, restarting or failing over refuses for a moment: wait a bit.
        deadline = time.monotonic() + self._settings.connect_timeout
        while True:
            try:
                return await self.connect()
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                    raise StartupError(
                        f"Cannot connect to the PostgreSQL store {self._where} ({reason}): check [store] url, "
                        "that the server runs and takes connections, and the password (in the URL, "
                        "TCWEBHOOK_STORE__URL or PGPASSWORD)."
                    ) from None
            await asyncio.sleep(0.2)

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        conn = await self._first_connection()
        try:
            self._schema_found = await migrate(conn, self._where)
        except StartupError:
            await conn.close()
            raise
        except psycopg.Error as exc:
            await conn.close()
            raise StartupError(
                f"Cannot prepare the PostgreSQL store {self._where} ({str(exc).strip()}): the user needs "
                "CREATE on the database's schema, and the server must not be a read-only standby."
            ) from None
        writer = PostgresWriter(self.connect, max_batch=self._settings.max_batch, notify_sql=dpg.NOTIFY)
        writer.start(conn)
        self._writer = writer
        self._pool = AsyncConnectionPool(
            self._conninfo,
            min_size=self._settings.pool_min,
            max_size=self._settings.pool_max,
            configure=self._configure,
            timeout=self._settings.connect_timeout,
            open=False,
            name="tcwebhook-inbox-read",
        )
        await self._pool.open(wait=False)
        log.info("inbox_opened", store=self._where, sinks=self._sinks)

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        pool, self._pool = self._pool, None
        task, self._listen_task = self._listen_task, None
        self._listeners.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if writer is not None:
            await writer.close()
        if pool is not None:
            await pool.close()

    # -- plumbing ------------------------------------------------------------------------------

    async def _write(self, op: Callable[[Conn], Awaitable[T]] | Bulk, *, wakes: bool = False) -> T:
        writer = self._writer
        if writer is None:
            raise StoreUnavailable("event store is not open")
        try:
            return await writer.submit(op, wakes=wakes)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"event store write failed: {exc}") from exc

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("event store is not open")
        # A pooled connection may have died with a restarted server: one more try on a new one.
        for attempt in (1, 2):
            try:
                async with pool.connection() as conn:
                    return await fn(conn)
            except PoolTimeout as exc:
                raise StoreUnavailable("event store unavailable: no connection to the database") from exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if attempt == 2:
                    raise unavailable(exc) from exc
            except psycopg.Error as exc:
                raise unavailable(exc) from exc
        raise AssertionError("unreachable")

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def q(conn: Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

        return await self._read(q)

    # -- notifications -------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever any process commits deliveries that are due now."""
        self._listeners.append(callback)
        if self._listen_task is None and self._writer is not None:
            self._listen_task = asyncio.create_task(self._listen(), name="tcwebhook-inbox-listen")

    def _wake(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                log.exception("inbox_listener_failed")

    async def _listen(self) -> None:
        pause = 0.2
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                try:
                    await conn.execute(f"LISTEN {dpg.CHANNEL}")
                    pause = 0.2
                    self._wake()  # anything committed while we were not listening
                    async for _ in conn.notifies():
                        self._wake()
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except psycopg.Error as exc:
                log.info("inbox_listen_interrupted", error=str(exc).strip().splitlines()[0] if str(exc) else "")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    # -- receiving -----------------------------------------------------------------------------

    async def ping(self) -> None:
        async def op(conn: Conn) -> None:
            cur = await conn.execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
            row = await cur.fetchone()
            if row is None or row[0] or row[1] == "on":
                raise StoreUnavailable("event store unavailable: the database is read-only (a standby?)")

        await self._write(op)

    async def store(self, event: NewEvent) -> StoreResult:
        now = time.time()
        params = _event_params(event, new_id(), now, self._new_status)
        next_at = None if self._hold_new else now
        if event.reconciled:
            return await self._write(
                partial(_store_reconciled, params=params, sinks=self._sinks, next_at=next_at),
                wakes=bool(self._sinks) and not self._hold_new,
            )
        bulk = Bulk(_STORE, (*params, next_at, self._sinks), partial(_after_store, params=params))
        return await self._write(bulk, wakes=bool(self._sinks) and not self._hold_new)

    async def quarantine(
        self,
        *,
        route: str,
        content_type: str,
        body: bytes,
        headers: Mapping[str, str],
        reason: str,
        status_code: int,
    ) -> str:
        qid = new_id()
        params = (qid, time.time(), route, content_type, reason, status_code, _headers_json(headers), body)

        async def op(conn: Conn) -> str:
            await conn.execute(_INSERT_QUARANTINE, params)
            return qid

        return await self._write(op)

    async def reprocess_quarantined(self, quarantine_id: str, event: NewEvent) -> StoreResult:
        now = time.time()
        params = _event_params(event, new_id(), now, self._new_status)
        next_at = None if self._hold_new else now
        return await self._write(
            partial(_reprocess, quarantine_id=quarantine_id, params=params, sinks=self._sinks, next_at=next_at),
            wakes=bool(self._sinks) and not self._hold_new,
        )

    # -- reading -------------------------------------------------------------------------------

    async def get_event(self, event_id: str) -> StoredEvent:
        rows = await self._rows(f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = %s", (event_id,))  # noqa: S608
        if not rows:
            raise EventNotFound(f"no event {event_id}")
        return event_from_row(rows[0])

    async def list_events(self, flt: EventFilter) -> Sequence[StoredEvent]:
        sql, args = listing(flt, EVENT_COLUMNS, newest_first=True, postgres=True)
        return [event_from_row(r) for r in await self._rows(sql, (*args, flt.limit))]

    async def list_event_ids(self, flt: EventFilter) -> Sequence[str]:
        sql, args = listing(flt, "event_id", newest_first=False, postgres=True)
        return [r[0] for r in await self._rows(sql, (*args, flt.limit))]

    async def deliveries(self, event_id: str) -> Sequence[Delivery]:
        sql = (
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries"  # noqa: S608
            " WHERE seq = (SELECT seq FROM events WHERE event_id = %s) ORDER BY sink"
        )
        return [delivery_from_row(r) for r in await self._rows(sql, (event_id,))]

    async def attempts(self, event_id: str) -> Sequence[Attempt]:
        sql = (
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts"  # noqa: S608
            " WHERE seq = (SELECT seq FROM events WHERE event_id = %s) ORDER BY id"
        )
        return [attempt_from_row(r) for r in await self._rows(sql, (event_id,))]

    async def status_counts(self) -> Mapping[str, int]:
        counts = {EventStatus.PENDING.value: 0, EventStatus.DEAD.value: 0}
        rows = await self._rows(
            "SELECT status, count(*) FROM events WHERE status IN ('pending', 'dead') GROUP BY status"
        )
        counts.update({str(r[0]): int(r[1]) for r in rows})
        return counts

    async def pending_sinks(self) -> Sequence[str]:
        rows = await self._rows("SELECT DISTINCT sink FROM deliveries WHERE status = 'pending' ORDER BY sink")
        return [r[0] for r in rows]

    async def count_by_status(self) -> Mapping[str, int]:
        counts = dict.fromkeys((s.value for s in EventStatus), 0)
        rows = await self._rows("SELECT status, count(*) FROM events GROUP BY status")
        counts.update({str(r[0]): int(r[1]) for r in rows})
        rows = await self._rows("SELECT count(*) FROM quarantine WHERE reprocessed_event_id IS NULL")
        counts["quarantined"] = int(rows[0][0])
        return counts

    async def sink_health(self, sinks: Sequence[str]) -> Sequence[SinkHealth]:
        names = tuple(sinks)
        return await self._read(lambda conn: dpg.sink_health(conn, names))

    async def arrivals(self, since: datetime, bucket_seconds: int) -> Sequence[tuple[datetime, int]]:
        width = max(int(bucket_seconds), 1)
        rows = await self._rows(
            "SELECT floor(received_at / %s)::bigint AS bucket, count(*) FROM events"
            " WHERE received_at >= %s GROUP BY bucket ORDER BY bucket",
            (width, since.timestamp()),
        )
        return [(to_datetime(int(bucket) * width), int(count)) for bucket, count in rows]

    async def describe(self) -> StoreInfo:
        async def q(conn: Conn) -> StoreInfo:
            version = await schema_version(conn)
            rows: dict[str, int] = {}
            for table in TABLES:
                cur = await conn.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - constant names
                row = await cur.fetchone()
                rows[table] = int(row[0]) if row else 0
            cur = await conn.execute("SELECT status, count(*) FROM events GROUP BY status ORDER BY status")
            events = {str(r[0]): int(r[1]) for r in await cur.fetchall()}
            return StoreInfo("postgresql", self._where, version, self._schema_found, rows, events)

        return await self._read(q)

    async def prune(self, before: float, limit: int = 500) -> int:
        return await self._write(partial(_prune, before=before, limit=limit))

    async def get_quarantined(self, quarantine_id: str) -> QuarantineEntry:
        sql = f"SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id = %s"  # noqa: S608
        rows = await self._rows(sql, (quarantine_id,))
        if not rows:
            raise EventNotFound(f"no quarantine entry {quarantine_id}")
        return quarantine_from_row(rows[0])

    async def list_quarantined(self, limit: int = 100) -> Sequence[QuarantineEntry]:
        sql = f"SELECT {QUARANTINE_COLUMNS} FROM quarantine ORDER BY received_at DESC, id DESC LIMIT %s"  # noqa: S608
        return [quarantine_from_row(r) for r in await self._rows(sql, (limit,))]

    # -- delivery state ------------------------------------------------------------------------

    async def claim_due(
        self,
        *,
        owner: str,
        sinks: Sequence[str],
        limit: int,
        lease: float,
        stale_kinds: frozenset[EventKind],
    ) -> Sequence[Claim]:
        names = tuple(sinks)
        return await self._write(
            lambda conn: dpg.claim_due(
                conn, owner=owner, sinks=names, limit=limit, lease=lease, stale_kinds=stale_kinds, now=time.time()
            )
        )

    async def claim_event(
        self,
        event_id: str,
        *,
        owner: str,
        sinks: Sequence[str],
        lease: float,
        stale_kinds: frozenset[EventKind],
    ) -> EventClaim:
        names = tuple(sinks)
        return await self._write(
            lambda conn: dpg.claim_event(
                conn, event_id, owner=owner, sinks=names, lease=lease, stale_kinds=stale_kinds, now=time.time()
            )
        )

    async def finish(self, claim: Claim, result: AttemptResult) -> bool:
        return await self._write(lambda conn: dpg.finish(conn, claim, result, time.time()))

    async def extend_leases(self, claims: Sequence[Claim], lease: float) -> None:
        held = tuple(claims)
        if held:
            await self._write(lambda conn: dpg.extend_leases(conn, held, time.time() + lease))

    async def replay(
        self,
        event_ids: Sequence[str],
        *,
        only_dead: bool = False,
        force: bool = False,
        sink: str | None = None,
    ) -> ReplayResult:
        ids = tuple(event_ids)
        return await self._write(
            lambda conn: dpg.replay(
                conn, ids, sinks=self._sinks, only_dead=only_dead, force=force, now=time.time(), sink=sink
            )
        )


    # -- reconciliation ------------------------------------------------------------------------

    async def key_updates(self, keys: Sequence[str]) -> Sequence[KeyUpdate]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        rows = await self._rows(
            "SELECT key, kind, event_id, received_at, last_updated_at FROM events WHERE key = ANY(%s) ORDER BY seq",
            (wanted,),
        )
        return [KeyUpdate(r[0], EventKind(r[1]), r[2], to_datetime(r[3]), r[4]) for r in rows]

    async def get_state(self, name: str) -> str | None:
        rows = await self._rows("SELECT value FROM service_state WHERE name = %s", (name,))
        return None if not rows else rows[0][0]

    async def set_state(self, name: str, value: str) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO service_state (name, value) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

        await self._write(op)

    async def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        async def op(conn: Conn) -> bool:
            now = time.time()
            cur = await conn.execute(
                "INSERT INTO service_state (name, owner, expires) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires"
                " WHERE service_state.owner IS NULL OR service_state.owner = excluded.owner"
                " OR service_state.expires < %s RETURNING owner",
                (name, owner, now + seconds, now),
            )
            return await cur.fetchone() is not None

        return await self._write(op)

    async def release_lease(self, name: str, owner: str) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE service_state SET owner = NULL, expires = NULL WHERE name = %s AND owner = %s", (name, owner)
            )

        await self._write(op)

# The protocol is the contract every backend keeps; mypy checks this one against it.
_CHECK: type[Inbox] = PostgresInbox
