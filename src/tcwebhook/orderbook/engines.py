"""The book's statements on each store's connection: SQLite (sync, in the store's writer or
reader thread) and PostgreSQL (async, in the store's writer task or pool).

Each function runs inside the caller's transaction; none commits.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from tcwebhook.orderbook.book import BookEntry, BookEvent
from tcwebhook.orderbook.sql import (
    DOCUMENTS,
    ENTRY,
    EVENTS,
    FETCHES,
    LINES,
    BookSummary,
    BookWrite,
    EntryRows,
    assemble,
    bodies_query,
    for_postgres,
    postgres_statements,
    summaries_query,
    summary_from_row,
)
from tcwebhook.orderbook.updates import objects_of

if TYPE_CHECKING:
    import psycopg

    PgConn = psycopg.AsyncConnection[Any]

_PG = {sql: for_postgres(sql) for sql in (ENTRY, LINES, DOCUMENTS, EVENTS, FETCHES)}


def fetch_id(write: BookWrite, event: BookEvent) -> str:
    """The same fetched state for the same event is kept once, however often it is retried."""
    return f"{event.event_id}/{write.header_stamp}"


# -- SQLite --------------------------------------------------------------------------------------


def apply_sqlite(
    conn: sqlite3.Connection, write: BookWrite, event: BookEvent, now: float, fetched: str | None = None
) -> None:
    for st in write.statements(event, now, fetched):
        if st.many is not None:
            conn.executemany(st.sql, st.many)
        else:
            conn.execute(st.sql, st.params)


def entry_sqlite(conn: sqlite3.Connection, key: str) -> BookEntry | None:
    row = conn.execute(ENTRY, (key,)).fetchone()
    if row is None:
        return None
    rows = EntryRows(
        row,
        conn.execute(LINES, (key,)).fetchall(),
        conn.execute(DOCUMENTS, (key,)).fetchall(),
        conn.execute(EVENTS, (key,)).fetchall(),
        conn.execute(FETCHES, (key,)).fetchall(),
    )
    seqs = rows.seqs()
    bodies = conn.execute(bodies_query(len(seqs)), seqs).fetchall() if seqs else []
    return assemble(rows, objects_of(bodies))


def summaries_sqlite(
    conn: sqlite3.Connection, *, status: str | None = None, number: str | None = None, limit: int = 100
) -> list[BookSummary]:
    sql, params = summaries_query(status=status, number=number, limit=limit)
    return [summary_from_row(row) for row in conn.execute(sql, params)]


# -- PostgreSQL ----------------------------------------------------------------------------------


async def apply_postgres(
    conn: PgConn, write: BookWrite, event: BookEvent, now: float, fetched: str | None = None
) -> None:
    for st in postgres_statements(write, event, now, fetched):
        if st.many is not None:
            async with conn.cursor() as cur:
                await cur.executemany(st.sql, st.many)
        else:
            await conn.execute(st.sql, st.params)


async def _all(conn: PgConn, sql: str, params: Any) -> list[Any]:
    cur = await conn.execute(sql, params)
    return list(await cur.fetchall())


async def entry_postgres(conn: PgConn, key: str) -> BookEntry | None:
    cur = await conn.execute(_PG[ENTRY], (key,))
    row = await cur.fetchone()
    if row is None:
        return None
    rows = EntryRows(
        row,
        await _all(conn, _PG[LINES], (key,)),
        await _all(conn, _PG[DOCUMENTS], (key,)),
        await _all(conn, _PG[EVENTS], (key,)),
        await _all(conn, _PG[FETCHES], (key,)),
    )
    seqs = rows.seqs()
    bodies = await _all(conn, for_postgres(bodies_query(len(seqs))), seqs) if seqs else []
    return assemble(rows, objects_of(bodies))


async def summaries_postgres(
    conn: PgConn, *, status: str | None = None, number: str | None = None, limit: int = 100
) -> list[BookSummary]:
    sql, params = summaries_query(status=status, number=number, limit=limit)
    return [summary_from_row(row) for row in await _all(conn, for_postgres(sql), params)]
