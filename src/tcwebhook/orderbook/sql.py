"""The order book in SQL: its tables, the statements that apply one update, the reads.

Both stores run these statements in the transaction that stores the event, so the book can never
disagree with what was acknowledged. The merge rules of ``orderbook.book`` are conditional
upserts on the sortable stamps, so applying an update needs no read first and applying it twice
changes nothing:

* header: replaced only ``WHERE excluded.header_stamp >= book_entries.header_stamp``;
* each line: replaced only ``WHERE excluded.stamp >= book_lines.stamp``;
* a fetched order whose header is now the entry's header replaces the lines as a whole (its lines
  are written after the old ones are deleted);
* events and documents: inserted once (``ON CONFLICT DO NOTHING``).

The SQL is written once with ``?`` placeholders (SQLite); PostgreSQL gets ``%s`` through
``for_postgres``. JSON columns are text written by ``book.dump`` (exact decimals).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tcwebhook.orderbook.book import BookEntry, BookEvent, BookUpdate, LineUpdate, dump, load

TABLES: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS book_entries (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        object_id TEXT NOT NULL,
        number TEXT,
        status TEXT,
        last_updated_at TEXT,
        header_stamp TEXT NOT NULL,
        fetched_line_count INTEGER,
        updated_at DOUBLE PRECISION NOT NULL,
        header TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS book_entries_listing ON book_entries(kind, updated_at)",
    "CREATE INDEX IF NOT EXISTS book_entries_number ON book_entries(number)",
    """
    CREATE TABLE IF NOT EXISTS book_lines (
        key TEXT NOT NULL,
        line_key TEXT NOT NULL,
        stamp TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (key, line_key)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS book_documents (
        key TEXT NOT NULL,
        doc_key TEXT NOT NULL,
        seq BIGINT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (key, doc_key)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS book_events (
        key TEXT NOT NULL,
        event_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        event_name TEXT NOT NULL,
        last_updated_at TEXT,
        source TEXT NOT NULL,
        PRIMARY KEY (key, event_id, source)
    )
    """,
)
"""The book's tables; every statement is valid on both engines and may run again."""

TABLE_NAMES = ("book_entries", "book_lines", "book_documents", "book_events")

_EVENT = (
    "INSERT INTO book_events (key, event_id, seq, event_name, last_updated_at, source)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key, event_id, source) DO NOTHING"
)
_HEADER = (
    "INSERT INTO book_entries (key, kind, object_id, number, status, last_updated_at, header_stamp,"
    " fetched_line_count, updated_at, header) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET number = COALESCE(excluded.number, book_entries.number),"
    " status = excluded.status, last_updated_at = excluded.last_updated_at,"
    " header_stamp = excluded.header_stamp, updated_at = excluded.updated_at, header = excluded.header"
    " WHERE excluded.header_stamp >= book_entries.header_stamp"
)
# Documents never carry a header of their own: they only create the entry when it is new.
_DOCUMENTS_HEADER = (
    "INSERT INTO book_entries (key, kind, object_id, number, status, last_updated_at, header_stamp,"
    " fetched_line_count, updated_at, header) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET number = COALESCE(book_entries.number, excluded.number),"
    " updated_at = excluded.updated_at"
)
_TOUCH = "UPDATE book_entries SET updated_at = ? WHERE key = ? AND updated_at < ?"
_FETCHED_COUNT = "UPDATE book_entries SET fetched_line_count = ? WHERE key = ?"
_CLEAR_LINES = (
    "DELETE FROM book_lines WHERE key = ?"
    " AND EXISTS (SELECT 1 FROM book_entries WHERE key = ? AND header_stamp = ?)"
)
_LINE = (
    "INSERT INTO book_lines (key, line_key, stamp, data) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (key, line_key) DO UPDATE SET stamp = excluded.stamp, data = excluded.data"
    " WHERE excluded.stamp >= book_lines.stamp"
)
_DOCUMENT = (
    "INSERT INTO book_documents (key, doc_key, seq, data) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (key, doc_key) DO NOTHING"
)

ENTRY = (
    "SELECT key, kind, object_id, number, status, header_stamp, fetched_line_count, header"
    " FROM book_entries WHERE key = ?"
)
LINES = "SELECT line_key, stamp, data FROM book_lines WHERE key = ?"
DOCUMENTS = "SELECT data FROM book_documents WHERE key = ? ORDER BY seq, doc_key"
EVENTS = "SELECT event_id, event_name, last_updated_at, source, seq FROM book_events WHERE key = ? ORDER BY seq"


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    params: tuple[Any, ...]
    many: tuple[tuple[Any, ...], ...] | None = None  # run once per parameter tuple


@dataclass(frozen=True, slots=True)
class PreparedUpdate:
    """An update with its JSON already written: the work done before the transaction."""

    update: BookUpdate
    header_json: str | None
    lines: tuple[tuple[str, str, str], ...]  # line key, stamp, JSON
    documents: tuple[tuple[str, str], ...]  # document key, JSON

    @classmethod
    def of(cls, update: BookUpdate) -> PreparedUpdate:
        docs = tuple((dump(d).decode(), dump(d).decode()) for d in update.documents)
        return cls(
            update,
            None if update.header is None else dump(update.header).decode(),
            tuple((ln.key, ln.stamp, dump(ln.data).decode()) for ln in update.lines),
            docs,
        )

    def statements(self, event: BookEvent, now: float) -> list[Statement]:
        """The statements that apply this update for ``event`` (its ``seq`` set), in order."""
        u = self.update
        out = [Statement(_EVENT, (u.key, event.event_id, event.seq, event.event_name, event.last_updated_at, u.source))]
        if self.header_json is not None:
            sql = _DOCUMENTS_HEADER if u.source == "documents" else _HEADER
            last = event.last_updated_at if u.source != "documents" else None
            out.append(
                Statement(sql, (u.key, u.kind, u.object_id, u.number, u.status, last, u.header_stamp, now,
                                self.header_json))
            )
        if u.source == "fetch" and u.kind == "order":
            out.append(Statement(_CLEAR_LINES, (u.key, u.key, u.header_stamp)))
            out.append(Statement(_FETCHED_COUNT, (len(self.lines), u.key)))
        if self.lines:
            out.append(Statement(_LINE, (), tuple((u.key, k, s, j) for k, s, j in self.lines)))
            out.append(Statement(_TOUCH, (now, u.key, now)))
        if self.documents:
            out.append(Statement(_DOCUMENT, (), tuple((u.key, k, event.seq, j) for k, j in self.documents)))
        return out


def for_postgres(sql: str) -> str:
    return sql.replace("?", "%s")


def entry_from_rows(
    row: Sequence[Any],
    lines: Iterable[Sequence[Any]],
    documents: Iterable[Sequence[Any]],
    events: Iterable[Sequence[Any]],
) -> BookEntry:
    """A ``BookEntry`` from the rows of ``ENTRY``, ``LINES``, ``DOCUMENTS`` and ``EVENTS``."""
    key, kind, object_id, number, status, header_stamp, fetched, header = row
    return BookEntry(
        key=key,
        kind=kind,
        object_id=object_id,
        header=load(header),
        header_stamp=header_stamp,
        lines={lk: LineUpdate(lk, st, load(data)) for lk, st, data in lines},
        documents=[load(d[0]) for d in documents],
        events=[BookEvent(eid, name, last, src, seq) for eid, name, last, src, seq in events],
        fetched_line_count=fetched,
        number=number,
        status=status,
    )


@dataclass(frozen=True, slots=True)
class BookSummary:
    """One row of ``orders list``: no lines, no header."""

    key: str
    kind: str
    object_id: str
    number: str | None
    status: str | None
    last_updated_at: str | None
    line_count: int
    fetched_line_count: int | None
    events: int

    def as_data(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "id": self.object_id,
            "number": self.number,
            "status": self.status,
            "lastUpdatedAt": self.last_updated_at,
            "lineCount": self.line_count if self.kind == "order" else None,
            "fetchedLineCount": self.fetched_line_count,
            "events": self.events,
        }


def summaries_query(*, status: str | None, number: str | None, limit: int) -> tuple[str, tuple[Any, ...]]:
    """``orders list``: orders newest first, optionally of one status or matching a number or id."""
    where, params = ["kind = ?"], ["order"]
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if number is not None:
        where.append("(number = ? OR object_id = ?)")
        params.extend((number, number))
    # Only fixed condition texts are joined; values are parameters.
    sql = (
        "SELECT e.key, e.kind, e.object_id, e.number, e.status, e.last_updated_at,"  # noqa: S608
        " (SELECT COUNT(*) FROM book_lines l WHERE l.key = e.key),"
        " e.fetched_line_count,"
        " (SELECT COUNT(*) FROM book_events v WHERE v.key = e.key)"
        f" FROM book_entries e WHERE {' AND '.join(where)} ORDER BY e.updated_at DESC, e.key LIMIT ?"
    )
    return sql, (*params, limit)


def summary_from_row(row: Sequence[Any]) -> BookSummary:
    key, kind, object_id, number, status, last, lines, fetched, events = row
    return BookSummary(key, kind, object_id, number, status, last, int(lines), fetched, int(events))
