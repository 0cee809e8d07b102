"""The sql sink: insert each event as one row of a staging table the ERP imports from.

SQLAlchemy Core with its usual drivers: ``postgresql://`` (psycopg), ``mariadb://`` or
``mysql://`` (PyMySQL), ``sqlite:///path`` (the standard library), and any other dialect whose
driver is installed, named in full (``mssql+pyodbc://…``). The table (``create_table = true``
creates it) has the columns of ``event_table``; the event id is its primary key, so an event
already in the table is a delivery that succeeded before (a redelivery after a crash): the
insert of a row whose id is present counts as done. Each delivery is one transaction.

Failures: refused credentials, an unknown database, table or column, missing privileges and a
value the table refuses are permanent; a refused or lost connection, a deadlock, a lock wait,
a full disk and a database shutting down are retried. The expected columns are checked at
start-up (``probe``), so a table that does not fit stops the service instead of the deliveries.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable
from datetime import UTC
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, SQLAlchemyError

from tcwebhook.config import url_passwords
from tcwebhook.errors import PermanentError, StartupError, TransientError
from tcwebhook.inbox.base import StoredEvent
from tcwebhook.sinks.base import EventSink, Probed
from tcwebhook.sinks.event import Event, EventLike
from tcwebhook.sinks.filters import SinkFilter
from tcwebhook.sinks.payload import PayloadSource, event_body

log = structlog.get_logger(__name__)

# The driver each bare scheme gets (PostgreSQL's is tcwebhook's own store driver).
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "mysql": "mysql+pymysql",
            "mariadb": "mariadb+pymysql"}
# SQLSTATE classes no retry can fix: 22 data, 23 constraint, 28 authorization, 3D unknown
# database, 42 unknown table/column or privilege.
_PERMANENT_SQLSTATE = ("22", "23", "28", "3D", "42")
# MySQL/MariaDB error numbers no retry can fix: access denied (1044, 1045, 1142, 1143), unknown
# database/table/column (1049, 1146, 1054), values the column refuses (1264, 1366, 1406).
_PERMANENT_MYSQL = frozenset({1044, 1045, 1049, 1054, 1142, 1143, 1146, 1264, 1366, 1406})
# Connection-time refusals that drivers report without a code.
_PERMANENT_TEXT = ("authentication failed", "access denied", "does not exist", "no such table", "no such column",
                   "readonly database", "not authorized", "has no column")
_ERROR_CHARS = 300

COLUMNS = ("event_id", "seq", "received_at", "kind", "event_name", "order_id", "shipment_id", "po_number",
           "content_type", "payload")


def event_table(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The table of ``rows = "event"``: one row per event, keyed by the event id."""
    schema, _, table = name.rpartition(".")
    return sa.Table(
        table,
        metadata or sa.MetaData(),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("event_name", sa.String(128), nullable=False),
        sa.Column("order_id", sa.String(128)),
        sa.Column("shipment_id", sa.String(128)),
        sa.Column("po_number", sa.String(128)),
        sa.Column("content_type", sa.String(255), nullable=False),
        # MySQL's TEXT holds 64 kB; an order with many lines is more.
        sa.Column("payload", sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"), nullable=False),
        schema=schema or None,
    )


def engine_url(url: str) -> sa.URL:
    """``url`` with the driver tcwebhook uses for a bare scheme; ValueError when unreadable."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("url is not a database URL such as postgresql://user:password@host/db") from None
    driver = _DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def _connect_args(dialect: str, timeout: float) -> dict[str, Any]:
    seconds = max(1, round(timeout))
    if dialect == "postgresql":
        return {"connect_timeout": seconds}
    if dialect in ("mysql", "mariadb"):
        return {"connect_timeout": seconds, "read_timeout": seconds, "write_timeout": seconds}
    if dialect == "sqlite":
        return {"timeout": timeout}
    return {}


class SqlSink:
    """Inserts one row per event into ``table``, idempotently, one transaction per delivery."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        table: str = "tradecloud_events",
        create_table: bool = False,
        events: Iterable[str] = (),
        timeout: float = 30.0,
        pool_size: int = 4,
        payload: PayloadSource = event_body,
    ) -> None:
        self.name = name
        self.filter = SinkFilter.parse(events, sink=name)
        self.timeout = timeout
        self.payload = payload
        self.create_table = create_table
        self._secrets = url_passwords(url)
        try:
            target = engine_url(url)
        except ValueError as exc:
            raise StartupError(f"Sink {name!r}: {exc}.") from None
        backend = target.get_backend_name()
        pool: dict[str, Any] = {}
        if backend != "sqlite":  # SQLite's pool is one connection per thread, without these
            pool = {"pool_pre_ping": True, "pool_size": pool_size, "max_overflow": pool_size, "pool_timeout": timeout}
        try:
            self.engine: Engine = sa.create_engine(target, connect_args=_connect_args(backend, timeout), **pool)
        except NoSuchModuleError:
            raise StartupError(
                f"Sink {name!r}: no SQLAlchemy dialect or driver for {target.drivername}: install it or fix url."
            ) from None
        self._where = target.render_as_string(hide_password=True)
        self.table = event_table(table)
        self._aware = backend == "postgresql"

    def accepts(self, event: EventLike) -> bool:
        return self.filter.accepts(event)

    def row(self, event: EventLike) -> dict[str, Any]:
        """The row ``deliver`` inserts for this event."""
        payload = self.payload(event)
        at = event.received_at
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        return {
            "event_id": event.event_id,
            "seq": event.seq,
            # Only PostgreSQL keeps a zone; the others get UTC without one.
            "received_at": at if self._aware else at.replace(tzinfo=None),
            "kind": event.kind.value,
            "event_name": event.event_name,
            "order_id": event.order_id,
            "shipment_id": event.shipment_id,
            "po_number": event.purchase_order_number,
            "content_type": payload.content_type,
            "payload": payload.text(),
        }

    def _insert(self, row: dict[str, Any]) -> bool:
        """True when inserted, False when the event was in the table already."""
        try:
            with self.engine.begin() as conn:
                conn.execute(self.table.insert().values(**row))
            return True
        except IntegrityError:
            with self.engine.connect() as conn:
                found = conn.execute(
                    sa.select(self.table.c.event_id).where(self.table.c.event_id == row["event_id"])
                ).first()
            if found is None:
                raise
            return False

    async def deliver(self, event: StoredEvent | Event) -> None:
        row = self.row(event)
        try:
            async with asyncio.timeout(self.timeout):
                inserted = await asyncio.to_thread(self._insert, row)
        except TimeoutError:
            raise TransientError(f"no answer from {self._where} within {self.timeout:g} s") from None
        except SQLAlchemyError as exc:
            raise self._failure(exc) from None
        log.debug("sink.sql.delivered", sink=self.name, event_id=event.event_id, inserted=inserted)

    def _failure(self, exc: SQLAlchemyError) -> PermanentError | TransientError:
        reason = self._reason(exc)
        if _is_permanent(exc):
            return PermanentError(f"{self._where}: {reason}")
        return TransientError(f"{self._where}: {reason}")

    def _reason(self, exc: SQLAlchemyError) -> str:
        # The driver's message only: SQLAlchemy's own adds the statement and its parameters.
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        text = " ".join(str(orig).split()) or type(orig).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:_ERROR_CHARS]

    def _check(self) -> str:
        if self.create_table:
            self.table.metadata.create_all(self.engine, checkfirst=True)
        found = sa.inspect(self.engine)
        if not found.has_table(self.table.name, schema=self.table.schema):
            raise LookupError(self.table.fullname)
        present = {c["name"].lower() for c in found.get_columns(self.table.name, schema=self.table.schema)}
        missing = [c for c in COLUMNS if c not in present]
        if missing:
            raise KeyError(", ".join(missing))
        return f"connected to {self._where}, table {self.table.fullname} has the expected columns"

    async def probe(self) -> str:
        """Connect and check the table's columns; a StartupError (one sentence) when that fails."""
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.to_thread(self._check)
        except TimeoutError:
            raise StartupError(
                f"Sink {self.name!r}: no answer from {self._where} within {self.timeout:g} s: "
                "start the database or fix url."
            ) from None
        except LookupError as exc:
            if isinstance(exc, KeyError):
                raise StartupError(
                    f"Sink {self.name!r}: table {self.table.fullname} lacks the columns {exc.args[0]}: "
                    "add them (see docs/deployment.md) or point table at another table."
                ) from None
            raise StartupError(
                f"Sink {self.name!r}: table {self.table.fullname} does not exist in {self._where}: "
                "create it (see docs/deployment.md) or set create_table = true."
            ) from None
        except SQLAlchemyError as exc:
            fix = "fix the user, password and database in url" if _is_permanent(exc) else "start it or fix url"
            raise StartupError(f"Sink {self.name!r}: {self._failure(exc)}: {fix}.") from None

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.dispose)


def _is_permanent(exc: SQLAlchemyError) -> bool:
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate.startswith(_PERMANENT_SQLSTATE)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and not isinstance(orig, sqlite3.Error):
        return args[0] in _PERMANENT_MYSQL
    text = str(orig if orig is not None else exc).lower()
    if any(part in text for part in _PERMANENT_TEXT):
        return True
    return isinstance(exc, (sa.exc.ProgrammingError, sa.exc.DataError, sa.exc.IntegrityError))


# What the dispatcher, the Tradecloud wrapper and start-up rely on.
_CHECK: type[EventSink] = SqlSink
_PROBED: type[Probed] = SqlSink
