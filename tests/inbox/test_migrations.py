"""Stores made by earlier tcwebhook versions open, migrate in place and keep their events.

``legacy/*.sql`` are inboxes made by tcwebhook at schema version 4 (before both engines shared
one schema description), with events pending, delivered and dead, a quarantine entry, a
reconciled event, a named value and a lease. ``legacy/*_migrations.py`` are the schemas as
those versions created them, to build databases at versions 1 to 3 as well.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.pgcluster import PgCluster

from tcwebhook.config import StoreSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox import (
    AttemptOutcome,
    AttemptResult,
    DeliveryStatus,
    EventFilter,
    EventStatus,
    Inbox,
    SqliteInbox,
)
from tcwebhook.inbox.postgres import PostgresInbox
from tcwebhook.inbox.schema import SCHEMA_VERSION

from .conftest import order_event
from .legacy import postgres_migrations, sqlite_migrations

pytestmark = pytest.mark.anyio

LEGACY = Path(__file__).parent / "legacy"
SINKS = ("erp", "files")


def legacy_sqlite(path: Path, version: int | None = None) -> None:
    """The dumped version-4 inbox, or an empty one at ``version`` as that version made it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, isolation_level=None) as conn:
        if version is None:
            conn.executescript((LEGACY / "sqlite_v4.sql").read_text())
        else:
            for steps in sqlite_migrations.MIGRATIONS[:version]:
                for statement in steps:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


def legacy_postgres(url: str, version: int | None = None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if version is None:
            conn.execute((LEGACY / "postgres_v4.sql").read_text().encode())
            return
        with conn.transaction():
            for steps in postgres_migrations.MIGRATIONS[:version]:
                for statement in steps:
                    conn.execute(statement.encode())
            conn.execute("CREATE TABLE tcwebhook_schema (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO tcwebhook_schema (version) VALUES (%s)", (version,))


def sqlite_shape(path: Path) -> dict[str, Any]:
    """Tables (columns, keys), indexes (with their WHERE) and triggers, for comparing schemas."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        shape: dict[str, Any] = {t: conn.execute(f"PRAGMA table_info({t})").fetchall() for t in tables}
        indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        for name, sql in indexes:
            shape[f"index {name}"] = " ".join(sql.replace("IF NOT EXISTS ", "").split())
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            shape[f"trigger {name}"] = True
        without_rowid = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%WITHOUT ROWID%'"
        )
        shape["without rowid"] = sorted(r[0] for r in without_rowid)
    conn.close()
    return shape


def postgres_shape(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        shape: dict[str, Any] = {}
        for row in conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity"
            " FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'tcwebhook_schema'"
            " ORDER BY table_name, ordinal_position"
        ):
            shape.setdefault(row[0], []).append(row[1:])
        for name, definition in conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"):
            shape[f"index {name}"] = definition
        for table, name, definition in conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'tcwebhook_schema'"
        ):
            shape[f"constraint {table}.{name}"] = definition
        for table, options in conn.execute(
            "SELECT relname, reloptions FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace AND reloptions IS NOT NULL"
        ):
            shape[f"options {table}"] = sorted(options)
        for table, column, method in conn.execute(
            "SELECT c.relname, a.attname, a.attcompression"
            " FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid"
            " WHERE c.relnamespace = 'public'::regnamespace AND a.attcompression <> ''"
        ):
            shape[f"compression {table}.{column}"] = method
    return shape


async def check_kept_and_working(box: Inbox, found: int) -> None:
    """The version-4 dump's content is all there, and every rule works on it."""
    info = await box.describe()
    assert (info.schema_found, info.schema_version) == (found, SCHEMA_VERSION)
    assert info.rows == {"events": 8, "deliveries": 16, "attempts": 8, "watermarks": 2, "quarantine": 1}
    assert info.events == {"dead": 2, "pending": 6}
    events = await box.list_events(EventFilter(limit=50))
    assert len(events) == 8
    assert {e.dedupe_key for e in events} >= {"msg-0", "msg-5", "ship-1", "msg-200"}
    assert [e.dedupe_key for e in await box.list_events(EventFilter(reconciled=True))] == ["msg-200"]
    shipment = next(e for e in events if e.kind is EventKind.SHIPMENT)
    assert shipment.body == b'{"shipment":{"id":"s-1"}}'
    assert shipment.headers == {"content-type": "application/json"}
    assert await box.get_state("reconcile:orders") == "2025-05-01T00:00:00Z"
    assert await box.acquire_lease("reconcile", "host-1", 60.0)  # its holder renews it
    assert not await box.acquire_lease("reconcile", "host-2", 60.0)
    (entry,) = await box.list_quarantined()
    assert (entry.body, entry.reason, entry.status_code) == (b"{bad", "not JSON", 400)
    counts = await box.count_by_status()
    assert (counts["pending"], counts["dead"], counts["quarantined"]) == (6, 2, 1)
    assert sum(h.dead for h in await box.sink_health(SINKS)) == 3
    # Old events are still per-key FIFO heads, duplicates are still found, new events go behind.
    assert (await box.store(order_event(0, dedupe_key="msg-0"))).duplicate
    fresh = await box.store(order_event(42, key="order:o-new", dedupe_key="new-42"))
    assert not fresh.duplicate and fresh.seq > max(e.seq for e in events)
    dead = [e for e in events if e.status == EventStatus.DEAD]
    replayed = await box.replay([e.event_id for e in dead], only_dead=True)
    assert (replayed.requeued, replayed.events) == (2, 2)
    stale = frozenset({EventKind.ORDER})
    claims = await box.claim_due(owner="w2", sinks=SINKS, limit=50, lease=30.0, stale_kinds=stale)
    assert fresh.event_id in {c.event.event_id for c in claims}
    for claim in claims:
        done = AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, time.time(), 0.01)
        assert await box.finish(claim, done)
    assert await box.prune(time.time() + 3600) >= 1


class TestSqlite:
    async def test_a_version_4_inbox_opens_and_keeps_everything(self, db_path: Path) -> None:
        legacy_sqlite(db_path)
        box = SqliteInbox(db_path, StoreSettings(), sinks=SINKS)
        await box.open()
        try:
            await check_kept_and_working(box, found=4)
        finally:
            await box.close()

    # Version 4 too: a file made by it, migrated, matches a new one only if this description
    # still says what versions 1 to 4 made.
    @pytest.mark.parametrize("version", [1, 2, 3, 4])
    async def test_older_versions_migrate_to_the_schema_of_a_new_file(self, tmp_path: Path, version: int) -> None:
        old, new = tmp_path / "old.db", tmp_path / "new.db"
        legacy_sqlite(old, version)
        with sqlite3.connect(old) as conn:
            conn.execute(
                "INSERT INTO events (event_id, dedupe_key, received_at, kind, event_name, status, content_type,"
                " headers, body)"
                " VALUES ('e-1', 'd-1', 1.0, 'order', 'OrderIssuedByBuyer', 'stored', 'x', X'7B7D', X'62')"
            )
        conn.close()
        for path in (old, new):
            box = SqliteInbox(path, StoreSettings(), sinks=SINKS)
            await box.open()
            await box.close()
        assert sqlite_shape(old) == sqlite_shape(new)
        box = SqliteInbox(old, StoreSettings(), sinks=SINKS)
        await box.open()
        try:
            assert (await box.describe()).schema_found == SCHEMA_VERSION
            assert (await box.get_event("e-1")).body == b"b"
            assert (await box.count_by_status())["stored"] == 1  # counted from the events it found
        finally:
            await box.close()


class TestPostgres:
    async def test_a_version_4_inbox_opens_and_keeps_everything(self, pg_url: str) -> None:
        legacy_postgres(pg_url)
        box = PostgresInbox(pg_url, StoreSettings(), sinks=SINKS)
        await box.open()
        try:
            await check_kept_and_working(box, found=4)
        finally:
            await box.close()

    @pytest.mark.parametrize("version", [1, 2, 3, 4])
    async def test_every_version_migrates_to_the_schema_of_a_new_database(
        self, pg_url: str, pg_cluster: PgCluster, version: int
    ) -> None:
        legacy_postgres(pg_url, version)
        name = pg_cluster.create_database()
        try:
            fresh = pg_cluster.url(name)
            for url in (pg_url, fresh):
                box = PostgresInbox(url, StoreSettings(), sinks=SINKS)
                await box.open()
                await box.close()
            assert postgres_shape(pg_url) == postgres_shape(fresh)
        finally:
            pg_cluster.drop_database(name)
