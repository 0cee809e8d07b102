"""The SQLite inbox: WAL, ``synchronous=FULL``, one group-committing writer, pooled readers.

Writes (events, quarantine, delivery state) go through ``GroupCommitWriter``; ``store`` returns only
once its transaction is committed and fsync'd. Reads use their own connections in a small thread
pool, so they never wait behind a commit, and other processes (the CLI, a separate ``tcwebhook
worker``) can read and write the same file while the server runs.

The rules are those of ``inbox.rules``, run through ``SqliteTx``: its calls are synchronous, so
a rule runs to its end in the writer's (or a reader's) thread in one step (``inbox.tx.drive``).
Foreign keys are declared but not enforced (``PRAGMA foreign_keys`` stays off: a lookup per
insert would check what the rules already keep, see ``schema.Column.references``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from tcwebhook.config import StoreSettings
from tcwebhook.errors import StartupError, StoreError, StoreUnavailable
from tcwebhook.filemodes import PRIVATE_DIR, PRIVATE_FILE, make_dirs, open_new, restrict
from tcwebhook.inbox import schema
from tcwebhook.inbox.base import Inbox
from tcwebhook.inbox.core import SqlInbox
from tcwebhook.inbox.dialect import SQLITE
from tcwebhook.inbox.sqlite_writer import GroupCommitWriter
from tcwebhook.inbox.tx import Bulk, Row, Rule, Tx, drive

log = structlog.get_logger(__name__)

T = TypeVar("T")

SCHEME = "sqlite://"


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


class SqliteTx:
    """``Tx`` on a sqlite3 connection: every call is done when it returns (never suspends)."""

    __slots__ = ("_conn", "dialect")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.dialect = SQLITE

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self._conn.execute(SQLITE.sql(sql), params).fetchone()
        return row

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._conn.execute(SQLITE.sql(sql), params).fetchall()

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(SQLITE.sql(sql), params).rowcount

    async def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
        text = SQLITE.sql(sql)
        return [self._conn.execute(text, params).rowcount for params in rows]

    async def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(SQLITE.sql(sql), params)

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(SQLITE.sql(sql), rows)

    def batch(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    async def notify(self) -> None:
        # Stores of this process wake its dispatcher directly; other processes poll.
        return


def run_rule(rule: Rule[T] | Bulk, conn: sqlite3.Connection) -> T:
    """Run a rule on ``conn`` (in the caller's thread) to its result."""
    result: T = drive(rule(SqliteTx(conn)))
    return result


def migrate(conn: sqlite3.Connection, where: str) -> int:
    """Bring the database up to ``schema.SCHEMA_VERSION``; returns the version found before.

    The version is ``PRAGMA user_version``. Runs under ``BEGIN IMMEDIATE`` so two processes
    opening a new file at once migrate it once. ``conn`` must be in autocommit mode.
    """
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found == schema.SCHEMA_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > schema.SCHEMA_VERSION:
            raise StartupError(
                f"The inbox {where} has schema version {found}, newer than this tcwebhook "
                f"knows ({schema.SCHEMA_VERSION}): upgrade tcwebhook."
            )
        for statement in schema.statements(SQLITE, found):
            conn.execute(statement)
        # PRAGMA takes no parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


async def _nothing(tx: Tx) -> None:
    return None


class SqliteInbox(SqlInbox):
    """``Inbox`` on one SQLite file."""

    engine = "sqlite"
    dialect = SQLITE

    def __init__(
        self,
        url_or_path: str | Path,
        settings: StoreSettings,
        *,
        sinks: Sequence[str] = (),
        hold_new: bool = False,
        readers: int = 2,
    ) -> None:
        super().__init__(settings, sinks=sinks, hold_new=hold_new)
        self.path = sqlite_path(url_or_path)
        self._reader_count = readers
        self._writer: GroupCommitWriter | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return str(self.path)

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
        writer = GroupCommitWriter(self._connect, max_batch=self._settings.max_batch, name="tcwebhook-inbox-writer")
        writer.start()
        self._writer = writer
        self._readers = ThreadPoolExecutor(max_workers=self._reader_count, thread_name_prefix="tcwebhook-inbox-read")
        log.info("inbox_opened", path=str(self.path), sinks=list(self.sinks))

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

    # -- the engine ----------------------------------------------------------------------------

    async def _write(self, rule: Rule[T] | Bulk, *, wakes: bool = False) -> T:
        writer = self._writer
        if writer is None:
            raise StoreUnavailable("event store is not open")
        try:
            result: T = await writer.submit(lambda conn: run_rule(rule, conn))
        except StoreError:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"event store write failed: {exc}") from exc
        return result

    def _in_reader(self, rule: Rule[T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(readonly=True)
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return run_rule(rule, conn)

    async def _read(self, rule: Rule[T]) -> T:
        pool = self._readers
        if pool is None:
            raise StoreUnavailable("event store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, self._in_reader, rule)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"event store read failed: {exc}") from exc

    async def _schema_version(self, tx: Tx) -> int:
        row = await tx.one("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def ping(self) -> None:
        # An empty write transaction: proves the write lock can be had, costs no fsync.
        await self._write(_nothing)

    def subscribe(self, callback: Callable[[], None]) -> None:
        # Stores of this process wake its dispatcher directly (the receiver's ``on_stored``);
        # other processes' stores are found by polling.
        return


# The protocol is the contract every backend keeps; mypy checks this one against it.
_CHECK: type[Inbox] = SqliteInbox
