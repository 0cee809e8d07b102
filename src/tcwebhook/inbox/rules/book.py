"""The order book: kept in the transaction that stores each event, read back for the CLI, the
console and ``payload = "order"`` (the SQL and its rules: ``orderbook.sql``)."""

from __future__ import annotations

import time

from tcwebhook.inbox.tx import Tx
from tcwebhook.orderbook.book import BookEntry, BookEvent
from tcwebhook.orderbook.sql import (
    BODIES,
    DOCUMENTS,
    ENTRY,
    EVENTS,
    FETCHES,
    LINES,
    BookSummary,
    BookWrite,
    EntryRows,
    assemble,
    objects_of,
    summaries_query,
    summary_from_row,
)


async def apply(tx: Tx, write: BookWrite, event: BookEvent, fetch_id: str | None = None) -> None:
    """Fold ``write`` in for ``event``; ``fetch_id``: an object fetched while delivering it."""
    for st in write.statements(event, time.time(), fetch_id):
        if st.many is None:
            await tx.send(st.sql, st.params)
        elif len(st.many) == 1:
            await tx.send(st.sql, st.many[0])
        else:
            await tx.many(st.sql, st.many)


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
