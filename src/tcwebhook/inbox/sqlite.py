"""The SQLite inbox: WAL, ``synchronous=FULL``, one group-committing writer, pooled readers.

Writes (events, quarantine, delivery state) go through ``GroupCommitWriter``; ``store`` returns
only once its transaction is committed and fsync'd. Reads use their own connections in a small
thread pool, so they never wait behind a commit, and other processes (the CLI, a separate
``tcwebhook worker``) can read and write the same file while the server runs.

Storing an event creates its deliveries — one per sink name given at construction — in the same
transaction. With no sink names the event is kept with status ``stored``; ``replay`` delivers it
later to the sinks configured then. With ``hold_new`` (synchronous delivery) new deliveries wait
for ``claim_event`` instead of the background loop: see ``dispatch.dispatcher``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson
import structlog

from tcwebhook.config import StoreSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import EventNotFound, StartupError, StoreError, StoreUnavailable
from tcwebhook.filemodes import PRIVATE_DIR, PRIVATE_FILE, make_dirs, open_new, restrict
from tcwebhook.inbox import sqlite_delivery as dsql
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
from tcwebhook.inbox.migrations import SCHEMA_VERSION, migrate
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
from tcwebhook.inbox.writer import GroupCommitWriter

log = structlog.get_logger(__name__)

# SQL text here is built from constant column lists and "?" placeholders only (hence the S608
# exemptions); every value is bound.

T = TypeVar("T")

_KINDS = {k.value: k for k in EventKind}

SCHEME = "sqlite://"

_INSERT_EVENT = (
    "INSERT INTO events (event_id, dedupe_key, received_at, kind, event_name, status, key,"
    " order_id, shipment_id, purchase_order_number, shipment_number, message_id, last_updated_at,"
    " updated_us, content_type, headers, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (dedupe_key) DO NOTHING RETURNING seq"
)
# Settled long enough ago: delivered or superseded, and no delivery touched since ``before``.
PRUNABLE = """
SELECT e.seq FROM events AS e
WHERE e.received_at < ? AND e.status IN ('delivered', 'superseded')
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.seq = e.seq AND (d.status IN ('pending', 'dead') OR d.updated_at >= ?))
ORDER BY e.received_at LIMIT ?
"""
TABLES = ("events", "deliveries", "attempts", "watermarks", "quarantine")

_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (id, received_at, route, content_type, reason, status_code, headers, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def sqlite_path(url_or_path: str | Path) -> Path:
    """The file of ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or a plain path."""
    if isinstance(url_or_path, Path):
        return url_or_path
    text = url_or_path
    if text.startswith(SCHEME):
        rest = text[len(SCHEME) :]
        if not rest.startswith("/") or rest == "/":
            raise StartupError(
                f"Store URL {text!r} is not sqlite:///<path>: write sqlite:///data/inbox.db "
                "(relative) or sqlite:////var/lib/tcwebhook/inbox.db (absolute)."
            )
        text = rest[1:].split("?", 1)[0]
    if text in ("", ":memory:"):
        raise StartupError("The SQLite inbox needs a file path (an in-memory database cannot be shared).")
    return Path(text)


def _headers_json(headers: Mapping[str, str]) -> bytes:
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


def _store_event(
    conn: sqlite3.Connection,
    params: tuple[Any, ...],
    sinks: tuple[str, ...],
    next_at: float | None,
    reconciled: bool = False,
) -> StoreResult:
    row = conn.execute(_INSERT_EVENT, params).fetchone()
    if row is None:
        existing = conn.execute(
            "SELECT event_id, seq FROM events WHERE dedupe_key = ?", (params[1],)
        ).fetchone()
        return StoreResult(event_id=existing[0], seq=existing[1], duplicate=True)
    seq: int = row[0]
    key = params[6]
    for sink in sinks:
        blocked = key is not None and conn.execute(dsql.KEY_BUSY, (sink, key)).fetchone() is not None
        conn.execute(dsql.INSERT_DELIVERY, (seq, sink, key, next_at, blocked, params[2]))
    if reconciled:
        conn.execute("INSERT INTO reconciled (seq) VALUES (?)", (seq,))
    return StoreResult(event_id=params[0], seq=seq, duplicate=False)


def _prune(conn: sqlite3.Connection, before: float, limit: int) -> int:
    seqs = [row[0] for row in conn.execute(PRUNABLE, (before, before, limit))]
    if not seqs:
        return 0
    marks = ", ".join("?" * len(seqs))
    for table in ("attempts", "deliveries", "reconciled", "events"):
        conn.execute(f"DELETE FROM {table} WHERE seq IN ({marks})", seqs)  # noqa: S608
    return len(seqs)


def _reprocess(
    conn: sqlite3.Connection,
    quarantine_id: str,
    params: tuple[Any, ...],
    sinks: tuple[str, ...],
    next_at: float | None,
) -> StoreResult:
    if conn.execute("SELECT 1 FROM quarantine WHERE id = ?", (quarantine_id,)).fetchone() is None:
        raise EventNotFound(f"no quarantine entry {quarantine_id}")
    result = _store_event(conn, params, sinks, next_at)
    conn.execute(
        "UPDATE quarantine SET reprocessed_event_id = ? WHERE id = ?", (result.event_id, quarantine_id)
    )
    return result


class SqliteInbox:
    """``Inbox`` on one SQLite file; open it once per process, share it between tasks."""

    def __init__(
        self,
        url_or_path: str | Path,
        settings: StoreSettings,
        *,
        sinks: Sequence[str] = (),
        hold_new: bool = False,
        readers: int = 2,
    ) -> None:
        self.path = sqlite_path(url_or_path)
        self._settings = settings
        self._sinks = tuple(sinks)
        self._new_status = EventStatus.PENDING.value if self._sinks else EventStatus.STORED.value
        self._hold_new = hold_new
        self._reader_count = readers
        self._writer: GroupCommitWriter | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._schema_found = SCHEMA_VERSION

    def retention(self) -> float | None:
        return self._settings.retention

    @property
    def sinks(self) -> tuple[str, ...]:
        """The sink names new events get a delivery for."""
        return self._sinks

    @property
    def commits(self) -> int:
        """Write transactions committed by this process (each is one fsync)."""
        return self._writer.commits if self._writer else 0

    @property
    def writes(self) -> int:
        """Write operations committed by this process."""
        return self._writer.operations if self._writer else 0

    # -- lifecycle -----------------------------------------------------------------------------

    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self._settings.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        try:
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA temp_store = MEMORY")
            if readonly:
                conn.execute("PRAGMA query_only = 1")
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self) -> None:
        where = str(self.path)
        try:
            make_dirs(self.path.parent, PRIVATE_DIR)
        except OSError as exc:
            raise StartupError(
                f"Cannot create the inbox directory {self.path.parent} ({exc.strerror}): "
                "check [store] url / data_dir and permissions."
            ) from None
        try:
            # SQLite gives -wal and -shm the mode of the database file, so that one decides.
            if not self.path.exists():
                with contextlib.suppress(FileExistsError):  # another process was quicker
                    os.close(open_new(self.path, PRIVATE_FILE))
            for suffix in ("", "-wal", "-shm"):
                restrict(self.path.with_name(self.path.name + suffix), PRIVATE_FILE)
        except OSError as exc:
            raise StartupError(
                f"Cannot create the inbox file {self.path} in the existing folder {self.path.parent} "
                f"({exc.strerror}): check the folder's owner and mode, or [store] url / data_dir."
            ) from None
        # Switching a new file to WAL can fail "locked" at once, without waiting, while another
        # process does the same: retry within the busy timeout.
        deadline = time.monotonic() + max(self._settings.busy_timeout, 1.0)
        while True:
            try:
                self._prepare_file(where)
                return
            except sqlite3.Error as exc:
                busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not busy or time.monotonic() > deadline:
                    raise StartupError(
                        f"Cannot open the inbox {where} ({exc}): check the path, its permissions and free space."
                    ) from None
            time.sleep(0.02)

    def _prepare_file(self, where: str) -> None:
        conn = self._connect()
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StartupError(
                    f"The inbox {where} cannot use WAL journaling (got {mode}): put it on a local file system."
                )
            # Keep the write-ahead log from growing without bound after a burst.
            conn.execute("PRAGMA journal_size_limit = 67108864")
            self._schema_found = migrate(conn, where)
        finally:
            conn.close()

    async def open(self) -> None:
        if self._writer is not None:
            return
        await asyncio.to_thread(self._prepare)
        writer = GroupCommitWriter(
            self._connect, max_batch=self._settings.max_batch, name="tcwebhook-inbox-writer"
        )
        writer.start()
        self._writer = writer
        self._readers = ThreadPoolExecutor(
            max_workers=self._reader_count, thread_name_prefix="tcwebhook-inbox-read"
        )
        log.info("inbox_opened", path=str(self.path), sinks=list(self._sinks))

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        readers, self._readers = self._readers, None
        if writer is not None:
            await asyncio.to_thread(writer.close)
        if readers is not None:
            readers.shutdown(wait=True)
        with self._lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            conn.close()

    # -- plumbing ------------------------------------------------------------------------------

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        writer = self._writer
        if writer is None:
            raise StoreUnavailable("event store is not open")
        try:
            return await writer.submit(op)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"event store write failed: {exc}") from exc

    def _in_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(readonly=True)
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return fn(conn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        pool = self._readers
        if pool is None:
            raise StoreUnavailable("event store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, self._in_reader, fn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"event store read failed: {exc}") from exc

    # -- receiving -----------------------------------------------------------------------------

    async def ping(self) -> None:
        # An empty write transaction: proves the write lock can be had, costs no fsync.
        await self._write(lambda conn: None)

    def subscribe(self, callback: Callable[[], None]) -> None:
        # Stores of this process wake its dispatcher directly (the receiver's ``on_stored``);
        # other processes' stores are found by polling.
        return

    async def store(self, event: NewEvent) -> StoreResult:
        now = time.time()
        params = _event_params(event, new_id(), now, self._new_status)
        next_at = None if self._hold_new else now
        return await self._write(
            partial(_store_event, params=params, sinks=self._sinks, next_at=next_at, reconciled=event.reconciled)
        )

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

        def op(conn: sqlite3.Connection) -> str:
            conn.execute(_INSERT_QUARANTINE, params)
            return qid

        return await self._write(op)

    async def reprocess_quarantined(self, quarantine_id: str, event: NewEvent) -> StoreResult:
        now = time.time()
        params = _event_params(event, new_id(), now, self._new_status)
        next_at = None if self._hold_new else now
        return await self._write(
            partial(_reprocess, quarantine_id=quarantine_id, params=params, sinks=self._sinks, next_at=next_at)
        )

    # -- reading -------------------------------------------------------------------------------

    async def get_event(self, event_id: str) -> StoredEvent:
        def q(conn: sqlite3.Connection) -> StoredEvent:
            sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?"  # noqa: S608
            row = conn.execute(sql, (event_id,)).fetchone()
            if row is None:
                raise EventNotFound(f"no event {event_id}")
            return event_from_row(row)

        return await self._read(q)

    async def list_events(self, flt: EventFilter) -> Sequence[StoredEvent]:
        sql, args = listing(flt, EVENT_COLUMNS, newest_first=True)
        return await self._read(lambda conn: [event_from_row(r) for r in conn.execute(sql, (*args, flt.limit))])

    async def list_event_ids(self, flt: EventFilter) -> Sequence[str]:
        sql, args = listing(flt, "event_id", newest_first=False)
        return await self._read(lambda conn: [r[0] for r in conn.execute(sql, (*args, flt.limit))])

    async def deliveries(self, event_id: str) -> Sequence[Delivery]:
        sql = (
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries"  # noqa: S608
            " WHERE seq = (SELECT seq FROM events WHERE event_id = ?) ORDER BY sink"
        )
        return await self._read(lambda conn: [delivery_from_row(r) for r in conn.execute(sql, (event_id,))])

    async def attempts(self, event_id: str) -> Sequence[Attempt]:
        sql = (
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts"  # noqa: S608
            " WHERE seq = (SELECT seq FROM events WHERE event_id = ?) ORDER BY id"
        )
        return await self._read(lambda conn: [attempt_from_row(r) for r in conn.execute(sql, (event_id,))])

    async def status_counts(self) -> Mapping[str, int]:
        def q(conn: sqlite3.Connection) -> dict[str, int]:
            counts = {EventStatus.PENDING.value: 0, EventStatus.DEAD.value: 0}
            rows = conn.execute(
                "SELECT status, count(*) FROM events WHERE status IN ('pending', 'dead') GROUP BY status"
            )
            counts.update(dict(rows))
            return counts

        return await self._read(q)

    async def pending_sinks(self) -> Sequence[str]:
        sql = "SELECT DISTINCT sink FROM deliveries WHERE status = 'pending' ORDER BY sink"
        return await self._read(lambda conn: [r[0] for r in conn.execute(sql)])

    async def count_by_status(self) -> Mapping[str, int]:
        def q(conn: sqlite3.Connection) -> dict[str, int]:
            counts = dict.fromkeys((s.value for s in EventStatus), 0)
            counts.update(dict(conn.execute("SELECT status, n FROM event_counts")))
            counts["quarantined"] = conn.execute(
                "SELECT count(*) FROM quarantine WHERE reprocessed_event_id IS NULL"
            ).fetchone()[0]
            return counts

        return await self._read(q)

    async def sink_health(self, sinks: Sequence[str]) -> Sequence[SinkHealth]:
        names = tuple(sinks)
        return await self._read(lambda conn: dsql.sink_health(conn, names))

    async def arrivals(self, since: datetime, bucket_seconds: int) -> Sequence[tuple[datetime, int]]:
        width = max(int(bucket_seconds), 1)
        sql = (
            "SELECT CAST(received_at / ? AS INTEGER) AS bucket, count(*) FROM events"
            " WHERE received_at >= ? GROUP BY bucket ORDER BY bucket"
        )
        return await self._read(
            lambda conn: [
                (to_datetime(bucket * width), count)
                for bucket, count in conn.execute(sql, (width, since.timestamp()))
            ]
        )

    async def describe(self) -> StoreInfo:
        def q(conn: sqlite3.Connection) -> StoreInfo:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            rows = {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}  # noqa: S608
            events = dict(conn.execute("SELECT status, count(*) FROM events GROUP BY status ORDER BY status"))
            return StoreInfo("sqlite", str(self.path), version, self._schema_found, rows, events)

        return await self._read(q)

    async def prune(self, before: float, limit: int = 500) -> int:
        return await self._write(partial(_prune, before=before, limit=limit))

    async def get_quarantined(self, quarantine_id: str) -> QuarantineEntry:
        def q(conn: sqlite3.Connection) -> QuarantineEntry:
            sql = f"SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id = ?"  # noqa: S608
            row = conn.execute(sql, (quarantine_id,)).fetchone()
            if row is None:
                raise EventNotFound(f"no quarantine entry {quarantine_id}")
            return quarantine_from_row(row)

        return await self._read(q)

    async def list_quarantined(self, limit: int = 100) -> Sequence[QuarantineEntry]:
        sql = f"SELECT {QUARANTINE_COLUMNS} FROM quarantine ORDER BY received_at DESC, id DESC LIMIT ?"  # noqa: S608
        return await self._read(lambda conn: [quarantine_from_row(r) for r in conn.execute(sql, (limit,))])

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
            lambda conn: dsql.claim_due(
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
            lambda conn: dsql.claim_event(
                conn, event_id, owner=owner, sinks=names, lease=lease, stale_kinds=stale_kinds, now=time.time()
            )
        )

    async def finish(self, claim: Claim, result: AttemptResult) -> bool:
        return await self._write(lambda conn: dsql.finish(conn, claim, result, time.time()))

    async def extend_leases(self, claims: Sequence[Claim], lease: float) -> None:
        held = tuple(claims)
        if held:
            await self._write(lambda conn: dsql.extend_leases(conn, held, time.time() + lease))

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
            lambda conn: dsql.replay(
                conn, ids, sinks=self._sinks, only_dead=only_dead, force=force, now=time.time(), sink=sink
            )
        )

    # -- reconciliation ------------------------------------------------------------------------

    async def key_updates(self, keys: Sequence[str]) -> Sequence[KeyUpdate]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []

        def q(conn: sqlite3.Connection) -> list[KeyUpdate]:
            found: list[KeyUpdate] = []
            for start in range(0, len(wanted), 500):  # stay under SQLite's bound-parameter limit
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                sql = (
                    "SELECT key, kind, event_id, received_at, last_updated_at FROM events"  # noqa: S608
                    f" WHERE key IN ({marks}) ORDER BY seq"
                )
                found.extend(
                    KeyUpdate(r[0], _KINDS[r[1]], r[2], to_datetime(r[3]), r[4]) for r in conn.execute(sql, chunk)
                )
            return found

        return await self._read(q)

    async def get_state(self, name: str) -> str | None:
        def q(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM service_state WHERE name = ?", (name,)).fetchone()
            return None if row is None else row[0]

        return await self._read(q)

    async def set_state(self, name: str, value: str) -> None:
        sql = (
            "INSERT INTO service_state (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )
        await self._write(lambda conn: conn.execute(sql, (name, value)) and None)

    async def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            now = time.time()
            conn.execute(
                "INSERT INTO service_state (name, owner, expires) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires"
                " WHERE service_state.owner IS NULL OR service_state.owner = excluded.owner"
                " OR service_state.expires < ?",
                (name, owner, now + seconds, now),
            )
            row = conn.execute("SELECT owner FROM service_state WHERE name = ?", (name,)).fetchone()
            return row is not None and row[0] == owner

        return await self._write(op)

    async def release_lease(self, name: str, owner: str) -> None:
        sql = "UPDATE service_state SET owner = NULL, expires = NULL WHERE name = ? AND owner = ?"
        await self._write(lambda conn: conn.execute(sql, (name, owner)) and None)


# The protocol is the contract every backend keeps; mypy checks this one against it.
_CHECK: type[Inbox] = SqliteInbox
