"""The inbox schema, described once: both engines' DDL and migrations come from here.

``MIGRATIONS`` is the history: each entry is one schema version, a list of steps (a new table,
an index, a column); appended, never edited once released. The current schema is what the steps
add up to (``TABLES``), and the rules' helpers (``copy``'s column lists, prune's child tables,
``db status``'s row counts) read it from there. Every statement is idempotent (``IF NOT
EXISTS``), so a version can be applied again over a database that already has part of it.

Times are epoch seconds (REAL / double precision, UTC), headers and bodies bytes, so rows move
between the two stores unchanged (``tcwebhook db copy``). ``events.body`` is the last column so
scans of the metadata never touch a large body's overflow pages (SQLite).

Differences between the engines are only where one forces them, each said where it is:
``Table.sqlite_without_rowid``, ``Table.pg_with``, and ``Raw`` steps of one engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tcwebhook.inbox.dialect import Dialect


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # a key of Dialect.types: serial, rowid, bigint, integer, real, text, bytes
    null: bool = True
    default: str | None = None
    unique: bool = False
    primary: bool = False  # a one-column primary key that is not a generated one
    # "events(seq)": the row belongs to that event and goes with it. Prune deletes such rows
    # itself, before the event: SQLite does not enforce foreign keys (see ``inbox.sqlite``).
    references: str | None = None
    foreign_key: bool = True  # False: the link is only known here, no check on each insert

    def ddl(self, d: Dialect) -> str:
        parts = [self.name, d.types[self.type]]
        if self.primary:
            parts.append("PRIMARY KEY")
        if not self.null:
            parts.append("NOT NULL")
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        if self.unique:
            parts.append("UNIQUE")
        if self.references and self.foreign_key:
            parts.append(f"REFERENCES {self.references} ON DELETE CASCADE")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()  # a composite primary key
    # SQLite: the primary key is the table, no second b-tree for a rowid (small, hot tables).
    sqlite_without_rowid: bool = False
    pg_with: str = ""  # PostgreSQL storage parameters (queue tables churn: vacuum sooner)
    counted: bool = True  # its rows are counted by ``tcwebhook db status``

    def statements(self, d: Dialect) -> Iterator[str]:
        lines = [c.ddl(d) for c in self.columns]
        if self.key:
            lines.append(f"PRIMARY KEY ({', '.join(self.key)})")
        tail = ""
        if d.name == "sqlite" and self.sqlite_without_rowid:
            tail = " WITHOUT ROWID"
        yield f"CREATE TABLE IF NOT EXISTS {self.name} (\n    " + ",\n    ".join(lines) + f"\n){tail}"
        if d.name == "pg" and self.pg_with:
            yield f"ALTER TABLE {self.name} SET ({self.pg_with})"


@dataclass(frozen=True, slots=True)
class AddColumn:
    table: str
    column: Column

    def statements(self, d: Dialect) -> Iterator[str]:
        # SQLite has no ADD COLUMN IF NOT EXISTS; a version is applied once there (see Raw).
        guard = "IF NOT EXISTS " if d.name == "pg" else ""
        yield f"ALTER TABLE {self.table} ADD COLUMN {guard}{self.column.ddl(d)}"


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    table: str
    columns: str
    where: str = ""

    def statements(self, d: Dialect) -> Iterator[str]:
        where = f" WHERE {self.where}" if self.where else ""
        yield f"CREATE INDEX IF NOT EXISTS {self.name} ON {self.table}({self.columns}){where}"


@dataclass(frozen=True, slots=True)
class DropIndex:
    name: str

    def statements(self, d: Dialect) -> Iterator[str]:
        yield f"DROP INDEX IF EXISTS {self.name}"


@dataclass(frozen=True, slots=True)
class Raw:
    """Statements of one engine alone (``only``: "sqlite" or "pg"); the why goes beside it."""

    only: str
    sql: tuple[str, ...]

    def statements(self, d: Dialect) -> Iterator[str]:
        if d.name == self.only:
            yield from self.sql


Step = Table | AddColumn | Index | DropIndex | Raw


def _text(name: str, *, null: bool = True) -> Column:
    return Column(name, "text", null=null)


def _real(name: str, *, null: bool = True) -> Column:
    return Column(name, "real", null=null)


_V1: tuple[Step, ...] = (
    Table(
        "events",
        (
            Column("seq", "serial"),
            Column("event_id", "text", null=False, unique=True),
            Column("dedupe_key", "text", null=False, unique=True),
            _real("received_at", null=False),
            _text("kind", null=False),
            _text("event_name", null=False),
            _text("status", null=False),
            *(_text(n) for n in ("key", "order_id", "shipment_id", "purchase_order_number")),
            *(_text(n) for n in ("shipment_number", "message_id", "last_updated_at")),
            Column("updated_us", "bigint"),
            _text("content_type", null=False),
            Column("headers", "bytes", null=False),
            Column("body", "bytes", null=False),
        ),
    ),
    # Small partial index: the operator's usual questions are about what is open or dead.
    Index("events_open", "events", "status, seq", "status IN ('pending', 'dead')"),
    Index("events_key", "events", "key, seq", "key IS NOT NULL"),
    Index("events_po", "events", "purchase_order_number", "purchase_order_number IS NOT NULL"),
    Index("events_sn", "events", "shipment_number", "shipment_number IS NOT NULL"),
    Index("events_received", "events", "received_at"),
    Table(
        "deliveries",
        (
            Column("seq", "bigint", null=False, references="events(seq)"),
            _text("sink", null=False),
            _text("key"),
            _text("status", null=False),
            Column("attempts", "integer", null=False, default="0"),
            _real("next_attempt_at"),
            _text("claim_owner"),
            _real("claim_expires"),
            _text("last_error"),
            Column("force", "integer", null=False, default="0"),
            Column("blocked", "integer", null=False, default="0"),
            _real("updated_at", null=False),
        ),
        key=("seq", "sink"),
        sqlite_without_rowid=True,
        pg_with="autovacuum_vacuum_scale_factor = 0.02, fillfactor = 80",
    ),
    # The ready queue: pending deliveries not waiting behind an earlier one of their key, so a
    # claim never wades through a long backlog held back by a failing head.
    Index("deliveries_due", "deliveries", "next_attempt_at", "status = 'pending' AND blocked = 0"),
    # The head-of-line lookup of per-key FIFO: the oldest pending delivery of a (sink, key).
    # SQLite's planner, without statistics, prefers deliveries_sink for these lookups and reads
    # every pending delivery of the sink (12 ms each with a backlog of 20,000): the queries that
    # need this index name it (INDEXED BY).
    Index("deliveries_head", "deliveries", "sink, key, seq", "status = 'pending'"),
    Index("deliveries_dead", "deliveries", "seq", "status = 'dead'"),
    Table(
        "attempts",
        (
            Column("id", "rowid"),
            Column("seq", "bigint", null=False, references="events(seq)", foreign_key=False),
            _text("sink", null=False),
            Column("number", "integer", null=False),
            _real("started_at", null=False),
            _real("duration", null=False),
            _text("outcome", null=False),
            _text("error"),
        ),
    ),
    Index("attempts_seq", "attempts", "seq"),
    Table(
        "watermarks",
        (
            _text("sink", null=False),
            _text("key", null=False),
            _text("kind", null=False),
            Column("updated_us", "bigint", null=False),
            Column("seq", "bigint", null=False),
        ),
        key=("sink", "key", "kind"),
        sqlite_without_rowid=True,
    ),
    Table(
        "quarantine",
        (
            Column("id", "text", primary=True),
            _real("received_at", null=False),
            _text("route", null=False),
            _text("content_type", null=False),
            _text("reason", null=False),
            Column("status_code", "integer", null=False),
            _text("reprocessed_event_id"),
            Column("headers", "bytes", null=False),
            Column("body", "bytes", null=False),
        ),
    ),
    Index("quarantine_received", "quarantine", "received_at"),
    # Bodies of a few KB are compressed on insert: lz4 costs the server about a quarter less CPU
    # per stored event than the default pglz (measured, docs/performance.md). Servers before 14,
    # or built without lz4, keep pglz. SQLite stores bodies as they are.
    Raw(
        "pg",
        (
            """
            DO $$
            BEGIN
                IF current_setting('server_version_num')::int >= 140000 THEN
                    BEGIN
                        EXECUTE 'ALTER TABLE events ALTER COLUMN body SET COMPRESSION lz4';
                        EXECUTE 'ALTER TABLE quarantine ALTER COLUMN body SET COMPRESSION lz4';
                    EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
                        NULL;
                    END;
                END IF;
            END
            $$
            """,
        ),
    ),
)

# The operator console and the metrics: listings by status and by sink in arrival order (keyset
# pages on a million rows), per-sink backlog and dead-letter counts, a sink's last success and
# last error. ``events_status`` covers what the partial ``events_open`` did.
_V2: tuple[Step, ...] = (
    Index("events_status", "events", "status, seq"),
    DropIndex("events_open"),
    Index("deliveries_sink", "deliveries", "sink, status, seq"),
    Index("attempts_sink", "attempts", "sink, outcome, started_at"),
)

# Kind and exact event-name filters in arrival order without a scan (a kind that matches nothing
# scanned all events: 1.3 s at a million).
_V3: tuple[Step, ...] = (
    Index("events_kind", "events", "kind, seq"),
    Index("events_name", "events", "event_name, seq"),
    # SQLite: events per status kept by triggers in the writing transaction (counting a million
    # rows by status scans an index for ~100 ms, too slow for the console's overview). Not on
    # PostgreSQL: every receiver and worker would update the same few rows in each transaction,
    # serialising them all on those rows' locks, so the counts stay a GROUP BY over events_status.
    Raw(
        "sqlite",
        (
            "CREATE TABLE IF NOT EXISTS event_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID",
            "INSERT INTO event_counts (status, n) SELECT status, count(*) FROM events GROUP BY status",
            """
            CREATE TRIGGER IF NOT EXISTS event_counts_insert AFTER INSERT ON events BEGIN
                INSERT INTO event_counts (status, n) VALUES (NEW.status, 1)
                ON CONFLICT (status) DO UPDATE SET n = n + 1;
            END
            """,
            """
            CREATE TRIGGER IF NOT EXISTS event_counts_update AFTER UPDATE OF status ON events
            WHEN OLD.status IS NOT NEW.status BEGIN
                UPDATE event_counts SET n = n - 1 WHERE status = OLD.status;
                INSERT INTO event_counts (status, n) VALUES (NEW.status, 1)
                ON CONFLICT (status) DO UPDATE SET n = n + 1;
            END
            """,
            """
            CREATE TRIGGER IF NOT EXISTS event_counts_delete AFTER DELETE ON events BEGIN
                UPDATE event_counts SET n = n - 1 WHERE status = OLD.status;
            END
            """,
        ),
    ),
)

# Reconciliation: which events it stored (a side table keeps the events rows and their hot
# indexes untouched), and named values / leases (high-water marks, one runner per store).
_V4: tuple[Step, ...] = (
    Table(
        "reconciled",
        (Column("seq", "bigint", primary=True, references="events(seq)"), _text("detail")),
        counted=False,
    ),
    Table(
        "service_state",
        (Column("name", "text", primary=True), _text("value"), _text("owner"), _real("expires")),
        sqlite_without_rowid=True,
        counted=False,
    ),
)

# The contract-drift report: one row per thing the models did not know (a field path, an enum
# value, an event name or key), counted, with the first and last event that carried it. Not a
# child of events: the record outlives the events pruned since.
_V5: tuple[Step, ...] = (
    Table(
        "contract_drift",
        (
            _text("what", null=False),
            _text("detail", null=False),
            Column("n", "bigint", null=False, default="0"),
            _text("first_event_id"),
            _text("last_event_id"),
            _real("first_seen"),
            _real("last_seen"),
        ),
        key=("what", "detail"),
        counted=False,
    ),
)

# The W3C trace context of the request that stored an event ([telemetry] enabled), so that its
# deliveries, also by another process, join the request's trace. Beside the event, not in it:
# written and read only while tracing is on.
_V6: tuple[Step, ...] = (
    Table(
        "traces",
        (Column("seq", "bigint", primary=True, references="events(seq)"), _text("traceparent")),
        sqlite_without_rowid=True,
        counted=False,
    ),
)

# The operators' audit log: appended only, each row's hash covers the previous row's (see
# ``tcwebhook.audit``). Prune never touches it; its own retention keeps the last deleted hash.
_V7: tuple[Step, ...] = (
    Table(
        "audit",
        (
            Column("seq", "serial"),
            _real("at", null=False),
            *(_text(n, null=False) for n in ("actor", "source", "action", "target", "outcome")),
            _text("detail"),
            _text("prev_hash", null=False),
            _text("hash", null=False),
        ),
    ),
    Index("audit_at", "audit", "at"),
)

# Console sessions, shared by every process on the store (only the token's SHA-256 is kept).
_V8: tuple[Step, ...] = (
    Table(
        "console_sessions",
        (
            Column("token_hash", "text", primary=True),
            *(_text(n, null=False) for n in ("username", "role", "csrf")),
            _real("created", null=False),
            _real("last_seen", null=False),
        ),
        sqlite_without_rowid=True,
        counted=False,
    ),
)

# The order book (``orderbook.sql``): per order or shipment the stamp of its newest header and
# the stored event that holds it, per line the same; the data stays in the events' bodies (only
# what was fetched while delivering is kept as data, in book_fetches). Nothing here belongs to an
# event: before pruning deletes an event the book reads, the book keeps that event's object in
# book_fetches and points there (``rules.book.detach``).
# The rows every event rewrites keep free room in their page on PostgreSQL (heap-only updates).
_V9: tuple[Step, ...] = (
    Table(
        "book_entries",
        (
            Column("key", "text", primary=True),
            _text("kind", null=False),
            _text("object_id", null=False),
            _text("number"),
            _text("status"),
            _text("last_updated_at"),
            _text("header_stamp", null=False),
            Column("header_seq", "bigint"),
            _text("header_fetch"),
            Column("fetched_line_count", "integer"),
            _real("updated_at", null=False),
        ),
        pg_with="fillfactor = 70",
        counted=False,
    ),
    # Only the number, which never changes once set: an index on what every event rewrites
    # (stamps, references, updated_at) would cost each stored event a rewrite of it.
    Index("book_entries_number", "book_entries", "number"),
    Table(
        "book_lines",
        (
            _text("key", null=False),
            _text("line_key", null=False),
            _text("stamp", null=False),
            Column("seq", "bigint"),
            _text("fetch_id"),
        ),
        key=("key", "line_key"),
        pg_with="fillfactor = 70",
        counted=False,
    ),
    Table(
        "book_documents",
        (_text("key", null=False), _text("doc_key", null=False), Column("seq", "bigint", null=False),
         _text("data", null=False)),
        key=("key", "doc_key"),
        counted=False,
    ),
    Table(
        "book_fetches",
        (
            Column("fetch_id", "text", primary=True),
            _text("key", null=False),
            Column("seq", "bigint", null=False),
            _text("event_id", null=False),
            _text("event_name", null=False),
            _text("last_updated_at"),
            _text("source", null=False),  # fetch: fetched while delivering; event/documents: kept at prune
            _text("data", null=False),
        ),
        counted=False,
    ),
    Index("book_fetches_key", "book_fetches", "key, seq"),
)

# An attempt's number is one more than the last of its delivery (seq, sink). On PostgreSQL, with
# statistics not yet gathered on a young table, the planner met that lookup by AND-ing
# ``attempts_seq`` with ``attempts_sink``, reading every attempt of the sink: 0.3 ms per delivery
# at 2,000 attempts, and growing with the table. One index on both columns (the number too, so the
# lookup reads the index alone) serves it on both engines, and everything ``attempts_seq`` served.
_V10: tuple[Step, ...] = (
    Index("attempts_delivery", "attempts", "seq, sink, number"),
    DropIndex("attempts_seq"),
)

MIGRATIONS: tuple[tuple[Step, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10)
SCHEMA_VERSION = len(MIGRATIONS)

# PostgreSQL stores made before both engines shared this history numbered versions 3 and 4 the
# other way round (3: reconciliation, 4: the kind and name indexes). A database found at 3 is
# brought up from 2: its version-4 tables exist already and are skipped (IF NOT EXISTS).
PG_FOUND_AS = {3: 2}


def statements(d: Dialect, found: int) -> list[str]:
    """The DDL that brings a database of ``d`` from version ``found`` to ``SCHEMA_VERSION``."""
    return [sql for steps in MIGRATIONS[found:] for step in steps for sql in step.statements(d)]


def _current() -> dict[str, Table]:
    tables: dict[str, Table] = {}
    for steps in MIGRATIONS:
        for step in steps:
            if isinstance(step, Table):
                tables[step.name] = step
            elif isinstance(step, AddColumn):
                old = tables[step.table]
                tables[step.table] = Table(
                    old.name, (*old.columns, step.column), old.key, old.sqlite_without_rowid, old.pg_with, old.counted
                )
    return tables


TABLES: dict[str, Table] = _current()
# Each table's columns in order (``tcwebhook db copy`` moves rows by these names).
COLUMNS: dict[str, tuple[str, ...]] = {name: tuple(c.name for c in t.columns) for name, t in TABLES.items()}
COUNTED: tuple[str, ...] = tuple(name for name, t in TABLES.items() if t.counted)


def children(parent: str) -> tuple[tuple[str, str], ...]:
    """(table, column) of the rows that belong to a row of ``parent`` (``Column.references``):
    deleting rows of ``parent`` deletes these first."""
    return tuple(
        (name, c.name)
        for name, t in TABLES.items()
        for c in t.columns
        if c.references and c.references.split("(", 1)[0] == parent
    )
