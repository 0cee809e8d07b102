"""The order book in SQL: its tables, the statements that apply one event, the reads.

The book keeps *references*, not copies: for each order or shipment the stamp of its newest
header and which stored event holds it, and for each line its stamp and the event that holds
its newest version. The data stays in the events' bodies (already stored, byte for byte) and is
read from there when an entry is read. Storing an event therefore adds a few small rows and no
serialisation to the path that answers Tradecloud. Both stores run these statements in the
transaction that stores the event, so the book never disagrees with what was acknowledged, and
retention never prunes an event the book still points to (the stores' pruning queries
skip events ``book_entries.header_seq`` or ``book_lines.seq`` name, a scan per pruning batch).

The merge rules of ``orderbook.book`` become conditional upserts on sortable stamps, so applying
a write needs no read first and applying it twice changes nothing:

* header: replaced only ``WHERE excluded.header_stamp >= book_entries.header_stamp``;
* each line: replaced only ``WHERE excluded.stamp >= book_lines.stamp``;
* a fetched order whose stamp is now the entry's header replaces the lines as a whole;
* documents: inserted once (``ON CONFLICT DO NOTHING``).

A full order fetched while delivering (enrichment, a resolved GET trigger) is no stored event:
its data is kept in ``book_fetches`` and referenced from there.

On PostgreSQL a stored event's header and lines are written by the statement that inserts the
event (``with_event``, one statement per event instead of three); SQLite, which has no writes
inside ``WITH`` and runs in this process, runs the statements one by one.

The SQL is in the neutral form of ``inbox.dialect``; the tables are ``inbox.schema`` version 9,
the rules running these statements ``inbox.rules.book`` and ``inbox.rules.intake``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tcwebhook.orderbook.book import (
    LOWEST,
    BookEntry,
    BookEvent,
    BookKind,
    BookUpdate,
    LineUpdate,
    Source,
    dump,
    line_key,
    load,
    order_header,
)

_ENTRY_COLUMNS = (
    "INSERT INTO book_entries (key, kind, object_id, number, status, last_updated_at, header_stamp,"
    " header_seq, header_fetch, fetched_line_count, updated_at)"
)
_HEADER_MERGE = (
    " ON CONFLICT (key) DO UPDATE SET number = COALESCE(excluded.number, book_entries.number),"
    " status = excluded.status, last_updated_at = excluded.last_updated_at,"
    " header_stamp = excluded.header_stamp, header_seq = excluded.header_seq,"
    " header_fetch = excluded.header_fetch, updated_at = excluded.updated_at"
    " WHERE excluded.header_stamp >= book_entries.header_stamp"
)
HEADER = f"{_ENTRY_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?){_HEADER_MERGE}"
# Documents never carry a header of their own: they only create the entry when it is new.
_DOCUMENTS_HEADER = (
    "INSERT INTO book_entries (key, kind, object_id, number, status, last_updated_at, header_stamp,"
    " header_seq, header_fetch, fetched_line_count, updated_at) VALUES (?, ?, ?, ?, NULL, NULL, ?, ?, NULL, NULL, ?)"
    " ON CONFLICT (key) DO UPDATE SET number = COALESCE(book_entries.number, excluded.number),"
    " updated_at = excluded.updated_at"
)
_FETCHED_COUNT = "UPDATE book_entries SET fetched_line_count = ? WHERE key = ?"
_CLEAR_LINES = (
    "DELETE FROM book_lines WHERE key = ?"
    " AND EXISTS (SELECT 1 FROM book_entries WHERE key = ? AND header_stamp = ?)"
)
_LINE_MERGE = (
    " ON CONFLICT (key, line_key) DO UPDATE SET stamp = excluded.stamp, seq = excluded.seq,"
    " fetch_id = excluded.fetch_id WHERE excluded.stamp >= book_lines.stamp"
)
LINE = f"INSERT INTO book_lines (key, line_key, stamp, seq, fetch_id) VALUES (?, ?, ?, ?, ?){_LINE_MERGE}"  # noqa: S608


def with_event(insert_event: str) -> str:
    """PostgreSQL: the statement inserting an event (``... RETURNING seq``) that also applies the
    event's header and lines (``BookWrite.with_event_params``), for a write that ``folds``.

    One statement instead of three per stored event: each statement costs the client and the
    server more than the rows it writes. The book rows are written only when the event is new (a
    duplicate returns no ``seq``), with the merge rules of the statements above; the lines are
    bound as two arrays (one element per line key).
    """
    # The CASTs give PostgreSQL the types of values that are not inserted from VALUES. Only
    # constant texts are joined; values are parameters.
    return (
        f"WITH e AS ({insert_event}),"  # noqa: S608
        f" h AS ({_ENTRY_COLUMNS} SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT),"
        " CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), e.seq, NULL, NULL, CAST(? AS DOUBLE PRECISION)"
        f" FROM e{_HEADER_MERGE}),"
        " l AS (INSERT INTO book_lines (key, line_key, stamp, seq, fetch_id)"
        " SELECT CAST(? AS TEXT), u.key, u.value, e.seq, NULL FROM e, json_each_text(CAST(? AS JSON)) AS u"
        f"{_LINE_MERGE})"
        " SELECT seq FROM e"
    )
_DOCUMENT = (
    "INSERT INTO book_documents (key, doc_key, seq, data) VALUES (?, ?, ?, ?) ON CONFLICT (key, doc_key) DO NOTHING"
)
_FETCH = (
    "INSERT INTO book_fetches (fetch_id, key, seq, event_id, event_name, last_updated_at, source, data)"
    " VALUES (?, ?, ?, ?, ?, ?, 'fetch', ?) ON CONFLICT (fetch_id) DO NOTHING"
)
KEEP = (
    "INSERT INTO book_fetches (fetch_id, key, seq, event_id, event_name, last_updated_at, source, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fetch_id) DO NOTHING"
)
"""An event's object kept by the book when the event itself is pruned (``kept/<event id>``)."""

ENTRY = (
    "SELECT key, kind, object_id, number, status, header_stamp, header_seq, header_fetch, fetched_line_count"
    " FROM book_entries WHERE key = ?"
)
LINES = "SELECT line_key, stamp, seq, fetch_id FROM book_lines WHERE key = ?"
DOCUMENTS = "SELECT data FROM book_documents WHERE key = ? ORDER BY seq, doc_key"
EVENTS = "SELECT event_id, event_name, last_updated_at, kind, seq FROM events WHERE key = ? ORDER BY seq"
FETCHES = (
    "SELECT fetch_id, event_id, event_name, last_updated_at, seq, data, source FROM book_fetches"
    " WHERE key = ? ORDER BY seq"
)


BODIES = "SELECT seq, kind, content_type, body FROM events WHERE seq IN INTS(?)"


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    params: tuple[Any, ...]
    many: tuple[tuple[Any, ...], ...] | None = None  # run once per parameter tuple


@dataclass(frozen=True, slots=True)
class BookWrite:
    """What one event (or one object fetched while delivering) writes: stamps and references."""

    key: str
    kind: BookKind
    object_id: str
    source: Source
    header_stamp: str
    number: str | None
    status: str | None
    last_updated_at: str | None
    lines: tuple[tuple[str, str], ...] = ()  # (line key, stamp)
    documents: tuple[str, ...] = ()  # each document as JSON (line ones say which line)
    fetched: str | None = None  # the object's JSON, when it is not a stored event (fetched on delivery)

    @classmethod
    def of(cls, update: BookUpdate, *, keep_data: bool = False) -> BookWrite:
        """From a pure update; ``keep_data``: the object is no stored event, keep it in the book."""
        fetched = None
        if keep_data and update.header is not None:
            obj = dict(update.header)
            if update.kind == "order":
                obj["lines"] = [ln.data for ln in update.lines]
            fetched = dump(obj).decode()
        last = update.header.get("lastUpdatedAt") if update.header else None
        if update.kind == "shipment" and update.header:
            meta = update.header.get("meta")
            last = meta.get("lastUpdatedAt") if isinstance(meta, Mapping) else None
        return cls(
            key=update.key,
            kind=update.kind,
            object_id=update.object_id,
            source=update.source,
            header_stamp=update.header_stamp,
            number=update.number,
            status=update.status,
            last_updated_at=last if isinstance(last, str) else None,
            lines=tuple((ln.key, ln.stamp) for ln in update.lines),
            documents=tuple(dump(d).decode() for d in update.documents),
            fetched=fetched,
        )

    @staticmethod
    def of_documents(documents: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
        return tuple(dump(d).decode() for d in documents)

    @property
    def folds(self) -> bool:
        """A stored event's header and lines only (no documents, no fetched data): the write
        ``with_event`` applies."""
        return self.source == "event" and not self.documents and self.fetched is None

    def with_event_params(self, now: float) -> tuple[Any, ...]:
        """The parameters ``with_event`` adds after the event's own."""
        # One element per line key: a statement may not update one row twice. The rows of one
        # event all point to it, so its newest stamp is what applying them in turn would leave.
        stamps: dict[str, str] = {}
        for key, line_stamp in self.lines:
            if key not in stamps or line_stamp > stamps[key]:
                stamps[key] = line_stamp
        return (
            self.key, self.kind, self.object_id, self.number, self.status, self.last_updated_at, self.header_stamp,
            now, self.key, orjson.dumps(stamps).decode(),
        )

    def header_params(self, seq: int | None, fetch_id: str | None, now: float) -> tuple[Any, ...]:
        """``HEADER``'s parameters: the header is held by stored event ``seq`` or fetch ``fetch_id``."""
        return (self.key, self.kind, self.object_id, self.number, self.status, self.last_updated_at,
                self.header_stamp, seq, fetch_id, now)

    def statements(self, event: BookEvent, now: float, fetch_id: str | None = None) -> list[Statement]:
        """The statements that apply this write for ``event`` (its ``seq`` set), in order.

        ``fetch_id``: the write is an object fetched while delivering ``event`` (``fetched`` set).
        """
        seq = None if fetch_id is not None else event.seq
        out: list[Statement] = []
        if fetch_id is not None:
            out.append(Statement(_FETCH, (fetch_id, self.key, event.seq, event.event_id, event.event_name,
                                          self.last_updated_at, self.fetched or "{}")))
        if self.source == "documents":
            out.append(Statement(_DOCUMENTS_HEADER, (self.key, self.kind, self.object_id, self.number, LOWEST,
                                                     seq, now)))
        else:
            out.append(Statement(HEADER, self.header_params(seq, fetch_id, now)))
        if self.source == "fetch" and self.kind == "order":
            out.append(Statement(_CLEAR_LINES, (self.key, self.key, self.header_stamp)))
            out.append(Statement(_FETCHED_COUNT, (len(self.lines), self.key)))
        if self.lines:
            out.append(Statement(LINE, (), tuple((self.key, k, st, seq, fetch_id) for k, st in self.lines)))
        if self.documents:
            out.append(Statement(_DOCUMENT, (), tuple((self.key, d, event.seq, d) for d in self.documents)))
        return out


# -- reading an entry back -----------------------------------------------------------------------

Ref = tuple[str, Any]  # ("e", seq) or ("f", fetch id)


@dataclass(frozen=True, slots=True)
class EntryRows:
    """The rows of one entry, before the events they point to are read."""

    row: Sequence[Any]
    lines: Sequence[Sequence[Any]]
    documents: Sequence[Sequence[Any]]
    events: Sequence[Sequence[Any]]
    fetches: Sequence[Sequence[Any]]

    def seqs(self) -> list[int]:
        """The stored events whose bodies the entry needs."""
        wanted = {self.row[6]} | {line[2] for line in self.lines}
        return sorted(s for s in wanted if s is not None)


_SOURCES = {"order_documents": "documents", "order_fetch": "fetch", "shipment_fetch": "fetch"}
_KINDS = {"documents": "order_documents", "event": "", "fetch": ""}  # a kept row's source -> its kind


def assemble(rows: EntryRows, objects: Mapping[int, tuple[str, Mapping[str, Any]]]) -> BookEntry:
    """The entry from its rows and the typed objects of the events they point to.

    ``objects``: seq -> (event kind, the order or shipment object of that event).
    """
    key, kind, object_id, number, status, header_stamp, header_seq, header_fetch, fetched = rows.row
    fetched_objects = {f[0]: (_KINDS.get(f[6], ""), load(f[5])) for f in rows.fetches}

    def source(seq: int | None, fetch_id: str | None) -> tuple[str, Mapping[str, Any]]:
        if fetch_id is not None:
            return fetched_objects.get(fetch_id, ("", {}))
        return objects.get(seq, ("", {})) if seq is not None else ("", {})

    event_kind, obj = source(header_seq, header_fetch)
    if kind == "shipment":
        header = dict(obj)
    elif event_kind == "order_documents":
        from tcwebhook.orderbook.book import documents_header

        header = documents_header(obj)
    else:
        header = order_header(obj)
    lines: dict[str, LineUpdate] = {}
    by_source: dict[tuple[Any, Any], dict[str, Mapping[str, Any]]] = {}
    for lkey, lstamp, seq, fetch_id in rows.lines:
        ref = (seq, fetch_id)
        if ref not in by_source:
            holder = source(seq, fetch_id)[1]
            by_source[ref] = {
                k: ln for ln in holder.get("lines") or () if isinstance(ln, Mapping) and (k := line_key(ln))
            }
        data = by_source[ref].get(lkey)
        if data is not None:
            lines[lkey] = LineUpdate(lkey, lstamp, dict(data))
    events = [
        BookEvent(eid, name, last, _SOURCES.get(ekind, "event"), seq)  # type: ignore[arg-type]
        for eid, name, last, ekind, seq in rows.events
    ]
    seen = {e.event_id for e in events}
    events += [
        BookEvent(eid, name, last, src, seq)
        for _fid, eid, name, last, seq, _d, src in rows.fetches
        if not (src != "fetch" and eid in seen)  # a pruned event kept by the book is listed once
    ]
    events.sort(key=lambda e: (e.seq, e.source == "fetch"))
    return BookEntry(
        key=key,
        kind=kind,
        object_id=object_id,
        header=header,
        header_stamp=header_stamp,
        lines=lines,
        documents=[load(d[0]) for d in rows.documents],
        events=events,
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
    where, params = ["b.kind = ?"], ["order"]
    if status is not None:
        where.append("b.status = ?")
        params.append(status)
    if number is not None:
        where.append("(b.number = ? OR b.object_id = ?)")
        params.extend((number, number))
    # Only fixed condition texts are joined; values are parameters.
    sql = (
        "SELECT b.key, b.kind, b.object_id, b.number, b.status, b.last_updated_at,"  # noqa: S608
        " (SELECT COUNT(*) FROM book_lines l WHERE l.key = b.key),"
        " b.fetched_line_count,"
        " (SELECT COUNT(*) FROM events e WHERE e.key = b.key)"
        f" FROM book_entries b WHERE {' AND '.join(where)} ORDER BY b.updated_at DESC, b.key LIMIT ?"
    )
    return sql, (*params, limit)


def summary_from_row(row: Sequence[Any]) -> BookSummary:
    key, kind, object_id, number, status, last, lines, fetched, events = row
    return BookSummary(key, kind, object_id, number, status, last, int(lines), fetched, int(events))
