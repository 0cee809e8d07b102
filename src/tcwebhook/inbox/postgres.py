"""The PostgreSQL inbox: any number of receivers and workers, on any machines, on one database.

Writes go through ``PostgresWriter`` (group commit on one connection per process); ``store``
returns only once its transaction's ``COMMIT`` returned with ``synchronous_commit`` at least
``on``. Reads use a small connection pool. Dispatchers of every process are woken through
``LISTEN/NOTIFY`` when a commit makes deliveries due (``subscribe``); their polling stays as the
fallback, so a lost notification (a reconnect) only delays delivery by one poll interval.

Any trouble of the database — down, restarting, failing over, read-only, out of connections, a
statement timeout — surfaces as ``StoreUnavailable`` (the receiver answers 503 with Retry-After)
and every connection is re-made on its next use, so the process recovers without a restart.

The rules are those of ``inbox.rules``; what they add to stay right while several processes
claim and settle at once (row locks) is said there. The schema is ``inbox.schema``'s, its
version in ``tcwebhook_schema``; several processes starting at once against a new database each
take the same transaction-scoped advisory lock before looking at the version, so exactly one
creates the schema and the others find it done.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tcwebhook.config import StoreSettings, redact_url
from tcwebhook.errors import StartupError, StoreError, StoreUnavailable
from tcwebhook.inbox import schema
from tcwebhook.inbox.base import Inbox
from tcwebhook.inbox.core import SqlInbox
from tcwebhook.inbox.dialect import POSTGRES
from tcwebhook.inbox.postgres_writer import CHANNEL, Conn, PgTx, PostgresWriter, unavailable
from tcwebhook.inbox.tx import Bulk, Rule, Tx

log = structlog.get_logger(__name__)

T = TypeVar("T")

SCHEMES = ("postgresql://", "postgres://")

# pg_advisory_xact_lock key: "tcwebhook" as a number, so it does not collide with an
# application sharing the database that picked a small integer.
MIGRATION_LOCK = 0x7463776562686F6F
_VERSION = "SELECT max(version) FROM tcwebhook_schema"


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


async def schema_version(conn: Conn) -> int:
    """The version of the schema in the database (0: none yet)."""
    cur = await conn.execute("SELECT to_regclass('tcwebhook_schema') IS NOT NULL")
    row = await cur.fetchone()
    if row is None or not row[0]:
        return 0
    cur = await conn.execute("SELECT max(version) FROM tcwebhook_schema")
    row = await cur.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


async def migrate(conn: Conn, where: str) -> int:
    """Bring the database up to ``schema.SCHEMA_VERSION``; returns the version found before.

    ``conn`` must be in autocommit mode; the migration runs in one transaction of its own.
    """
    found = await schema_version(conn)
    if found == schema.SCHEMA_VERSION:
        return found
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS tcwebhook_schema (version INTEGER NOT NULL)")
        found = await schema_version(conn)
        if found > schema.SCHEMA_VERSION:
            raise StartupError(
                f"The inbox {where} has schema version {found}, newer than this tcwebhook "
                f"knows ({schema.SCHEMA_VERSION}): upgrade tcwebhook."
            )
        for statement in schema.statements(POSTGRES, schema.PG_FOUND_AS.get(found, found)):
            await conn.execute(statement)
        await conn.execute("DELETE FROM tcwebhook_schema")
        await conn.execute("INSERT INTO tcwebhook_schema (version) VALUES (%s)", (schema.SCHEMA_VERSION,))
    return found


async def _writable(tx: Tx) -> None:
    row = await tx.one("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
    if row is None or row[0] or row[1] == "on":
        raise StoreUnavailable("event store unavailable: the database is read-only (a standby?)")


class PostgresInbox(SqlInbox):
    """``Inbox`` on a PostgreSQL database."""

    engine = "postgresql"
    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        settings: StoreSettings,
        *,
        sinks: Sequence[str] = (),
        hold_new: bool = False,
    ) -> None:
        super().__init__(settings, sinks=sinks, hold_new=hold_new)
        self.url = url
        self._where = redact_url(url)
        self._conninfo = conninfo(url, settings)
        self._writer: PostgresWriter | None = None
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listeners: list[Callable[[], None]] = []
        self._listen_task: asyncio.Task[None] | None = None

    @property
    def location(self) -> str:
        return self._where

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
        writer = PostgresWriter(self.connect, max_batch=self._settings.max_batch)
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
        log.info("inbox_opened", store=self._where, sinks=list(self.sinks))

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

    # -- the engine ----------------------------------------------------------------------------

    async def _write(self, rule: Rule[T] | Bulk, *, wakes: bool = False) -> T:
        writer = self._writer
        if writer is None:
            raise StoreUnavailable("event store is not open")
        try:
            result: T = await writer.submit(rule, wakes=wakes)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"event store write failed: {exc}") from exc
        return result

    async def _read(self, rule: Rule[T]) -> T:
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("event store is not open")
        # A pooled connection may have died with a restarted server: one more try on a new one.
        for attempt in (1, 2):
            try:
                async with pool.connection() as conn:
                    return await rule(PgTx(conn))
            except PoolTimeout as exc:
                raise StoreUnavailable("event store unavailable: no connection to the database") from exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if attempt == 2:
                    raise unavailable(exc) from exc
            except psycopg.Error as exc:
                raise unavailable(exc) from exc
        raise AssertionError("unreachable")

    async def _schema_version(self, tx: Tx) -> int:
        row = await tx.one(_VERSION)
        return int(row[0]) if row and row[0] is not None else 0

    async def ping(self) -> None:
        await self._write(_writable)

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
                    await conn.execute(f"LISTEN {CHANNEL}")
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


# The protocol is the contract every backend keeps; mypy checks this one against it.
_CHECK: type[Inbox] = PostgresInbox
