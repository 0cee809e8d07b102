"""``tcwebhook db copy``: move an inbox between stores (SQLite ⇄ PostgreSQL), resumably.

Both stores have the same tables and columns (``inbox.schema``),
so rows are copied as they are: events with their deliveries, attempts and reconciliation marks,
the quarantine, the watermarks of stale-state detection, the service's named state. Events go in
``seq`` order, each batch with its deliveries, attempts and marks in ONE destination transaction,
so an interrupted copy leaves whole batches behind and a rerun carries on after the highest
``seq`` the destination has. Every insert ignores rows
already there, so a rerun of a finished copy changes nothing. A final count check compares every
table of both stores.

The source is only read (once brought to this version's schema, as ``serve`` would). Copy a
store nobody writes to (stop ``serve`` and ``worker`` first): state that changes after its event
was copied is not copied again.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tcwebhook.config import StoreSettings
from tcwebhook.errors import StartupError, StoreUnavailable
from tcwebhook.inbox.schema import COLUMNS


@dataclass(frozen=True, slots=True)
class CopyCheck:
    """Rows per table in the source and the destination after the copy."""

    source: dict[str, int]
    destination: dict[str, int]

    @property
    def ok(self) -> bool:
        return all(self.destination.get(t, 0) >= n for t, n in self.source.items())

    @property
    def exact(self) -> bool:
        return self.source == self.destination


class _Db:
    """A plain DB-API connection to either store, with its placeholder."""

    def __init__(self, url: str) -> None:
        from tcwebhook.config import redact_url
        from tcwebhook.inbox.postgres import is_postgres_url

        self.url = url
        self.postgres = is_postgres_url(url)
        self.where = redact_url(url)
        self.mark = "%s" if self.postgres else "?"
        self.conn: Any
        if self.postgres:
            import psycopg

            try:
                self.conn = psycopg.connect(url, autocommit=True)
            except psycopg.Error as exc:
                raise StoreUnavailable(f"cannot connect to {self.where}: {str(exc).strip()}") from None
        else:
            from tcwebhook.inbox.sqlite import sqlite_path

            path = sqlite_path(url)
            self.where = str(path)
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA synchronous = FULL")

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        sql = sql.replace("?", self.mark)
        return [tuple(r) for r in self.conn.execute(sql, tuple(params)).fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        found = self.rows(sql, params)
        return found[0][0] if found else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self.postgres:
            with self.conn.transaction():
                yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def insert(self, table: str, rows: Sequence[tuple[Any, ...]], conflict: str = "DO NOTHING") -> None:
        if not rows:
            return
        cols = COLUMNS[table]
        marks = ", ".join([self.mark] * len(cols))
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks}) ON CONFLICT {conflict}"  # noqa: S608
        if self.postgres:
            with self.conn.cursor() as cur:
                cur.executemany(sql, rows)
        else:
            self.conn.executemany(sql, rows)

    def counts(self) -> dict[str, int]:
        return {t: int(self.scalar(f"SELECT count(*) FROM {t}")) for t in COLUMNS}  # noqa: S608

    def close(self) -> None:
        self.conn.close()


def _prepare(url: str, *, create: bool) -> None:
    """Check (source) or create/migrate (destination) the schema by opening the store once."""
    from tcwebhook.inbox.postgres import PostgresInbox, is_postgres_url
    from tcwebhook.inbox.sqlite import SqliteInbox, sqlite_path

    if not is_postgres_url(url) and not create and not sqlite_path(url).is_file():
        raise StartupError(f"The source store {sqlite_path(url)} does not exist: check --from.")
    settings = StoreSettings(pool_min=0, pool_max=1)
    box = PostgresInbox(url, settings) if is_postgres_url(url) else SqliteInbox(url, settings)

    async def go() -> None:
        await box.open()
        await box.close()

    asyncio.run(go())


def _select(table: str, where: str = "", order: str = "") -> str:
    return f"SELECT {', '.join(COLUMNS[table])} FROM {table}{where}{order}"  # noqa: S608


def copy_store(
    source_url: str,
    destination_url: str,
    *,
    batch: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> CopyCheck:
    """Copy everything from ``source_url`` into ``destination_url``; ``progress(done, total)``
    is called after each batch of events. Returns the row counts of both for the final check."""
    _prepare(source_url, create=False)
    _prepare(destination_url, create=True)
    src, dst = _Db(source_url), _Db(destination_url)
    try:
        total = int(src.scalar("SELECT count(*) FROM events"))
        last = int(dst.scalar("SELECT coalesce(max(seq), 0) FROM events"))
        if last:
            theirs = dst.scalar("SELECT event_id FROM events WHERE seq = ?", (last,))
            if src.scalar("SELECT event_id FROM events WHERE seq = ?", (last,)) != theirs:
                raise StartupError(
                    f"The destination {dst.where} holds events that are not from {src.where}: "
                    "copy into an empty store (or rerun into the one an earlier copy filled)."
                )
        done = int(src.scalar("SELECT count(*) FROM events WHERE seq <= ?", (last,)))
        if progress:
            progress(done, total)
        while True:
            events = src.rows(_select("events", " WHERE seq > ?", " ORDER BY seq LIMIT ?"), (last, batch))
            if not events:
                break
            low, high = events[0][0], events[-1][0]
            span = " WHERE seq >= ? AND seq <= ?"
            deliveries = src.rows(_select("deliveries", span), (low, high))
            attempts = src.rows(_select("attempts", span, " ORDER BY id"), (low, high))
            reconciled = src.rows(_select("reconciled", span), (low, high))
            with dst.transaction():
                dst.insert("events", events)
                dst.insert("deliveries", deliveries)
                dst.insert("attempts", attempts)
                dst.insert("reconciled", reconciled)
            last = high
            done += len(events)
            if progress:
                progress(done, total)
        # Attempts without their event (never made by tcwebhook, but keep whatever is there).
        orphans = src.rows(_select("attempts", " WHERE seq NOT IN (SELECT seq FROM events)"))
        with dst.transaction():
            dst.insert("attempts", orphans)
        after = ""
        while True:
            rows = src.rows(_select("quarantine", " WHERE id > ?", " ORDER BY id LIMIT ?"), (after, batch))
            if not rows:
                break
            with dst.transaction():
                dst.insert("quarantine", rows)
            after = rows[-1][0]
        with dst.transaction():
            dst.insert("service_state", src.rows(_select("service_state")))
            dst.insert("contract_drift", src.rows(_select("contract_drift")))
        marks = src.rows(_select("watermarks"))
        with dst.transaction():
            dst.insert(
                "watermarks",
                marks,
                "(sink, key, kind) DO UPDATE SET updated_us = excluded.updated_us, seq = excluded.seq"
                " WHERE excluded.updated_us > watermarks.updated_us",
            )
        if dst.postgres:
            # Rows came with their own ids: move the id generators past them.
            for table, column in (("events", "seq"), ("attempts", "id")):
                dst.rows(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"  # noqa: S608
                    f" coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
                )
        return CopyCheck(src.counts(), dst.counts())
    finally:
        src.close()
        dst.close()
