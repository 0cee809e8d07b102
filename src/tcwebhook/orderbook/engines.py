"""The book's statements run on each store's connection: a SQLite one (sync, in the store's
writer or reader thread) and a PostgreSQL one (async, in the store's writer task or pool).

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
    LINES,
    TABLES,
    BookSummary,
    PreparedUpdate,
    entry_from_rows,
    for_postgres,
    summaries_query,
    summary_from_row,
)

if TYPE_CHECKING:
    import psycopg

    PgConn = psycopg.AsyncConnection[Any]

_PG = {sql: for_postgres(sql) for sql in (ENTRY, LINES, DOCUMENTS, EVENTS)}


# -- SQLite --------------------------------------------------------------------------------------


def create_sqlite(conn: sqlite3.Connection) -> None:
    for statement in TABLES:
        conn.execute(statement)


def apply_sqlite(conn: sqlite3.Connection, prepared: PreparedUpdate, event: BookEvent, now: float) -> None:
    for st in prepared.statements(event, now):
        if st.many is not None:
            conn.executemany(st.sql, st.many)
        else:
            conn.execute(st.sql, st.params)


def entry_sqlite(conn: sqlite3.Connection, key: str) -> BookEntry | None:
    row = conn.execute(ENTRY, (key,)).fetchone()
    if row is None:
        return None
    return entry_from_rows(
        row,
        conn.execute(LINES, (key,)).fetchall(),
        conn.execute(DOCUMENTS, (key,)).fetchall(),
        conn.execute(EVENTS, (key,)).fetchall(),
    )


def summaries_sqlite(
    conn: sqlite3.Connection, *, status: str | None = None, number: str | None = None, limit: int = 100
) -> list[BookSummary]:
    sql, params = summaries_query(status=status, number=number, limit=limit)
    return [summary_from_row(row) for row in conn.execute(sql, params)]


# -- PostgreSQL ----------------------------------------------------------------------------------


async def create_postgres(conn: PgConn) -> None:
    for statement in TABLES:
        await conn.execute(statement)


async def apply_postgres(conn: PgConn, prepared: PreparedUpdate, event: BookEvent, now: float) -> None:
    for st in prepared.statements(event, now):
        sql = for_postgres(st.sql)
        if st.many is not None:
            async with conn.cursor() as cur:
                await cur.executemany(sql, st.many)
        else:
            await conn.execute(sql, st.params)


async def entry_postgres(conn: PgConn, key: str) -> BookEntry | None:
    cur = await conn.execute(_PG[ENTRY], (key,))
    row = await cur.fetchone()
    if row is None:
        return None
    lines = await (await conn.execute(_PG[LINES], (key,))).fetchall()
    documents = await (await conn.execute(_PG[DOCUMENTS], (key,))).fetchall()
    events = await (await conn.execute(_PG[EVENTS], (key,))).fetchall()
    return entry_from_rows(row, lines, documents, events)


async def summaries_postgres(
    conn: PgConn, *, status: str | None = None, number: str | None = None, limit: int = 100
) -> list[BookSummary]:
    sql, params = summaries_query(status=status, number=number, limit=limit)
    cur = await conn.execute(for_postgres(sql), params)
    return [summary_from_row(row) for row in await cur.fetchall()]
