"""The sql sink: insert each event as rows of a staging table the ERP imports from.

SQLAlchemy Core with its usual drivers: ``postgresql://`` (psycopg), ``mariadb://`` or
``mysql://`` (PyMySQL), ``sqlite:///path`` (the standard library), and any other dialect whose
driver is installed, named in full (``mssql+pyodbc://…``). ``rows = "event"`` writes one row per
event (``event_table``, keyed by the event id); ``rows = "lines"`` one row per schedule line or
shipment line, with the CSV format's columns (``lines_table``, keyed by event id and line number).
``create_table = true`` creates the table. Rows of an event already in the table mean a delivery
that succeeded before (a redelivery after a crash): the delivery counts as done. All rows of one
delivery are one transaction.

Failures: refused credentials, an unknown database, table or column, missing privileges and a
value the table refuses are permanent; a refused or lost connection, a deadlock, a lock wait,
a full disk and a database shutting down are retried. The expected columns are checked at
start-up (``probe``), so a table that does not fit stops the service instead of the deliveries.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, SQLAlchemyError

from tcwebhook.config import url_passwords
from tcwebhook.errors import PermanentError, StartupError, TransientError
from tcwebhook.formats.output import LineRows
from tcwebhook.formats.rows import ORDER_COLUMNS, SHIPMENT_COLUMNS
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


# The CSV columns of orders, then those only shipments have; each name once.
LINE_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(("event_id", "line_no", "seq", "received_at", "kind", *ORDER_COLUMNS, *SHIPMENT_COLUMNS))
)
"""The columns of ``rows = "lines"``: the row's place, then the CSV columns of orders and shipments."""
_NUMBERS = frozenset({"quantity", "net_price", "gross_price", "discount_percentage", "price_unit_quantity",
                      "backorder_quantity"})
_FLAGS = frozenset({"delivery_overdue"})
_INTEGERS = frozenset({"order_version"})


def _line_type(column: str) -> sa.types.TypeEngine[Any]:
    if column in _NUMBERS:
        return sa.Numeric(24, 6)
    if column in _FLAGS:
        return sa.Boolean()
    if column in _INTEGERS:
        return sa.BigInteger()
    return sa.Text()


def lines_table(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The table of ``rows = "lines"``: one row per schedule or shipment line, keyed by event and line."""
    schema, _, table = name.rpartition(".")
    return sa.Table(
        table,
        metadata or sa.MetaData(),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),  # 1, 2, … within the event
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        *(sa.Column(c, _line_type(c)) for c in LINE_COLUMNS[5:]),
        schema=schema or None,
    )


def _typed(column: str, value: Any) -> Any:
    """A CSV row value as the lines table's column takes it (a number in text is refused, permanently)."""
    if value is None:
        return None
    if column in _NUMBERS and not isinstance(value, bool):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise PermanentError(f"column {column}: {value!r} is not a number") from None
    if column in _FLAGS:
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if column in _INTEGERS and isinstance(value, int | str) and str(value).lstrip("-").isdigit():
        return int(value)
    if isinstance(value, dict | list):
        raise PermanentError(f"column {column}: a structured value cannot go into one column")
    return value if column in _INTEGERS or column in _NUMBERS else str(value)


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
        lines: Callable[[EventLike], LineRows] | None = None,
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
        self.lines = lines
        self.table = lines_table(table) if lines is not None else event_table(table)
        self.columns = LINE_COLUMNS if lines is not None else COLUMNS
        self._aware = backend == "postgresql"

    def accepts(self, event: EventLike) -> bool:
        return self.filter.accepts(event)

    def _received(self, event: EventLike) -> Any:
        at = event.received_at
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        # Only PostgreSQL keeps a zone; the others get UTC without one.
        return at if self._aware else at.replace(tzinfo=None)

    def rows(self, event: EventLike) -> list[dict[str, Any]]:
        """The rows ``deliver`` inserts for this event (none for an event without lines)."""
        if self.lines is None:
            payload = self.payload(event)
            return [
                {
                    "event_id": event.event_id,
                    "seq": event.seq,
                    "received_at": self._received(event),
                    "kind": event.kind.value,
                    "event_name": event.event_name,
                    "order_id": event.order_id,
                    "shipment_id": event.shipment_id,
                    "po_number": event.purchase_order_number,
                    "content_type": payload.content_type,
                    "payload": payload.text(),
                }
            ]
        found = self.lines(event)
        place = {"event_id": event.event_id, "seq": event.seq, "received_at": self._received(event),
                 "kind": event.kind.value}
        taken = [c for c in found.columns if c in self.table.c and c not in place]
        return [
            {**place, "line_no": number, **{c: _typed(c, line.get(c)) for c in taken}}
            for number, line in enumerate(found.rows, start=1)
        ]

    def _insert(self, rows: Sequence[dict[str, Any]]) -> bool:
        """True when inserted, False when the event's rows were in the table already."""
        if not rows:
            return True
        try:
            with self.engine.begin() as conn:
                conn.execute(self.table.insert(), list(rows))
            return True
        except IntegrityError:
            with self.engine.connect() as conn:
                found = conn.execute(
                    sa.select(self.table.c.event_id).where(self.table.c.event_id == rows[0]["event_id"]).limit(1)
                ).first()
            if found is None:
                raise
            return False

    async def deliver(self, event: StoredEvent | Event) -> None:
        rows = self.rows(event)
        try:
            async with asyncio.timeout(self.timeout):
                inserted = await asyncio.to_thread(self._insert, rows)
        except TimeoutError:
            raise TransientError(f"no answer from {self._where} within {self.timeout:g} s") from None
        except SQLAlchemyError as exc:
            raise self._failure(exc) from None
        log.debug("sink.sql.delivered", sink=self.name, event_id=event.event_id, rows=len(rows), inserted=inserted)

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
        missing = [c for c in self.columns if c not in present]
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
