"""The order book: kept in the transaction that stores each event, read back for the CLI, the
console and ``payload = "order"`` (the SQL and its rules: ``orderbook.sql``)."""

from __future__ import annotations

import time

from tcwebhook.inbox.tx import Tx
from tcwebhook.orderbook.book import BookEntry, BookEvent, dump
from tcwebhook.orderbook.sql import (
    BODIES,
    DOCUMENTS,
    ENTRY,
    EVENTS,
    FETCHES,
    HEADER,
    KEEP,
    LINE,
    LINES,
    BookSummary,
    BookWrite,
    EntryRows,
    assemble,
    summaries_query,
    summary_from_row,
)
from tcwebhook.orderbook.updates import object_of_body, objects_of


async def apply_stored(tx: Tx, write: BookWrite, seq: int) -> None:
    """``apply`` for a stored event's header and lines (``write.folds``), on the path that answers
    Tradecloud: the same statements, sent without describing them first."""
    await tx.send(HEADER, write.header_params(seq, None, time.time()))
    if len(write.lines) == 1:
        await tx.send(LINE, (write.key, *write.lines[0], seq, None))
    elif write.lines:
        await tx.many(LINE, [(write.key, key, stamp, seq, None) for key, stamp in write.lines])


async def apply(tx: Tx, write: BookWrite, event: BookEvent, fetch_id: str | None = None) -> None:
    """Fold ``write`` in for ``event``; ``fetch_id``: an object fetched while delivering it."""
    for st in write.statements(event, time.time(), fetch_id):
        if st.many is None:
            await tx.send(st.sql, st.params)
        elif len(st.many) == 1:
            await tx.send(st.sql, st.many[0])
        else:
            await tx.many(st.sql, st.many)


_HELD = (
    "SELECT header_seq FROM book_entries WHERE header_seq IN INTS(?)"
    " UNION SELECT seq FROM book_lines WHERE seq IN INTS(?)"
)
_HELD_EVENTS = (
    "SELECT seq, kind, content_type, body, event_id, event_name, last_updated_at, key FROM events WHERE seq IN INTS(?)"
)
_SOURCES = {"order_documents": "documents", "order_fetch": "fetch", "shipment_fetch": "fetch"}


async def detach(tx: Tx, seqs: list[int]) -> None:
    """Before events are pruned: keep the data the book reads from them as its own rows."""
    listed = tx.dialect.array(seqs)
    held = sorted({row[0] for row in await tx.all(_HELD, (listed, listed)) if row[0] is not None})
    if not held:
        return
    for seq, kind, content_type, body, event_id, name, last, key in await tx.all(
        _HELD_EVENTS, (tx.dialect.array(held),)
    ):
        obj = object_of_body(kind, content_type, bytes(body)) or {}
        kept = f"kept/{event_id}"
        source = _SOURCES.get(kind, "event")
        await tx.send(KEEP, (kept, key or "", seq, event_id, name, last, source, dump(obj).decode()))
        await tx.send("UPDATE book_entries SET header_seq = NULL, header_fetch = ? WHERE header_seq = ?", (kept, seq))
        await tx.send("UPDATE book_lines SET seq = NULL, fetch_id = ? WHERE seq = ?", (kept, seq))


async def entry(tx: Tx, key: str) -> BookEntry | None:
    row = await tx.one(ENTRY, (key,))
    if row is None:
        return None
    rows = EntryRows(
        row,
        await tx.all(LINES, (key,)),
        await tx.all(DOCUMENTS, (key,)),
        await tx.all(EVENTS, (key,)),
        await tx.all(FETCHES, (key,)),
    )
    seqs = rows.seqs()
    bodies = await tx.all(BODIES, (tx.dialect.array(seqs),)) if seqs else []
    return assemble(rows, objects_of(bodies))


async def summaries(tx: Tx, *, status: str | None, number: str | None, limit: int) -> list[BookSummary]:
    sql, params = summaries_query(status=status, number=number, limit=limit)
    return [summary_from_row(row) for row in await tx.all(sql, params)]
