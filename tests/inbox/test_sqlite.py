"""What only the SQLite inbox does: one file, WAL, its locks, its writer thread, its migrations."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from tcwebhook.config import StoreSettings
from tcwebhook.errors import StartupError, StoreUnavailable
from tcwebhook.inbox import EventFilter, SqliteInbox
from tcwebhook.inbox.dialect import SQLITE
from tcwebhook.inbox.rules import delivery as delivery_rules
from tcwebhook.inbox.rules import intake as intake_rules
from tcwebhook.inbox.schema import SCHEMA_VERSION
from tcwebhook.inbox.tx import Tx

from .conftest import first_value, order_event

pytestmark = pytest.mark.anyio


class TestDurability:
    """A stored event is committed and visible to other connections and processes."""

    async def test_visible_to_another_connection_when_store_returns(
        self, sqlite_inbox: SqliteInbox, db_path: Path
    ) -> None:
        result = await sqlite_inbox.store(order_event(1))
        with sqlite3.connect(db_path) as other:
            row = other.execute("SELECT event_id FROM events WHERE seq = ?", (result.seq,)).fetchone()
        assert row == (result.event_id,)

    async def test_wal_and_full_sync(self, sqlite_inbox: SqliteInbox, db_path: Path) -> None:
        await sqlite_inbox.store(order_event(1))
        with sqlite3.connect(db_path) as other:
            assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert other.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        # synchronous is per connection: ask the writer's own.
        assert await sqlite_inbox._write(first_value("PRAGMA synchronous")) == 2

    async def test_another_process_writes_and_reads_beside_us(
        self, sqlite_inbox: SqliteInbox, db_path: Path
    ) -> None:
        script = textwrap.dedent(
            f"""
            import asyncio
            from tcwebhook.config import StoreSettings
            from tcwebhook.contract.kinds import EventKind
            from tcwebhook.inbox import EventFilter, NewEvent, SqliteInbox

            async def main():
                box = SqliteInbox({str(db_path)!r}, StoreSettings(busy_timeout=10), sinks=("erp",))
                await box.open()
                for i in range(1000, 1150):
                    await box.store(NewEvent(
                        kind=EventKind.ORDER, event_name="OrderIssuedByBuyer", dedupe_key=f"msg-{{i}}",
                        content_type="application/json", body=b"{{}}", key=f"order:o-{{i % 5}}",
                    ))
                print(len(await box.list_events(EventFilter(limit=10_000))))
                await box.close()

            asyncio.run(main())
            """
        )
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for i in range(150):
            await sqlite_inbox.store(order_event(i))
        out, err = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == 0, err.decode()
        assert int(out.split()[-1]) >= 150
        events = await sqlite_inbox.list_events(EventFilter(limit=10_000))
        assert len(events) == 300
        assert len({e.seq for e in events}) == 300


class TestGroupCommit:
    """Concurrent stores share transactions: fewer commits (fsyncs) than stores."""

    async def test_writers_on_several_threads_and_loops(self, sqlite_inbox: SqliteInbox) -> None:
        commits_before = sqlite_inbox.commits
        errors: list[BaseException] = []

        def thread_main(t: int) -> None:
            async def go() -> None:
                await asyncio.gather(*(sqlite_inbox.store(order_event(10_000 + t * 100 + i)) for i in range(100)))

            try:
                asyncio.run(go())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=thread_main, args=(t,)) for t in range(4)]

        def run_all() -> None:
            for th in threads:
                th.start()
            for th in threads:
                th.join(30)

        await asyncio.to_thread(run_all)
        assert not errors
        assert sqlite_inbox.commits - commits_before < 400
        assert len(await sqlite_inbox.list_event_ids(EventFilter(limit=10_000))) == 400


class TestFailures:
    """Store failures surface as StoreUnavailable; the writer survives and recovers."""

    async def test_locked_database(self, sqlite_inbox: SqliteInbox, db_path: Path) -> None:
        await sqlite_inbox.store(order_event(1))
        holder = sqlite3.connect(db_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreUnavailable, match="locked"):
                await sqlite_inbox.store(order_event(2))
            with pytest.raises(StoreUnavailable):
                await sqlite_inbox.quarantine(
                    route="orders", content_type="text/plain", body=b"x", headers={}, reason="r", status_code=415
                )
            with pytest.raises(StoreUnavailable):
                await sqlite_inbox.ping()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        await sqlite_inbox.ping()
        result = await sqlite_inbox.store(order_event(2))
        assert not result.duplicate  # the failed attempt left nothing behind
        assert len(await sqlite_inbox.list_events(EventFilter())) == 2

    async def test_disk_full(self, sqlite_inbox: SqliteInbox) -> None:
        await sqlite_inbox.store(order_event(1))
        pages = await sqlite_inbox._write(first_value("PRAGMA page_count"))
        # A real SQLITE_FULL from the writer's own connection: it may not grow the file.
        await sqlite_inbox._write(first_value(f"PRAGMA max_page_count = {pages}"))
        big = b"x" * 200_000
        with pytest.raises(StoreUnavailable, match="full"):
            await sqlite_inbox.store(order_event(2, body=big))
        await sqlite_inbox._write(first_value("PRAGMA max_page_count = 1073741823"))
        assert not (await sqlite_inbox.store(order_event(2, body=big))).duplicate

    async def test_a_failing_operation_fails_alone(self, sqlite_inbox: SqliteInbox) -> None:
        async def broken(tx: Tx) -> None:
            await tx.send("INSERT INTO quarantine (id) VALUES ('half')")  # violates NOT NULL

        outcomes = await asyncio.gather(
            *(sqlite_inbox.store(order_event(i)) for i in range(10)),
            sqlite_inbox._write(broken),
            *(sqlite_inbox.store(order_event(i)) for i in range(10, 20)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[10], StoreUnavailable)
        assert all(not isinstance(o, BaseException) for i, o in enumerate(outcomes) if i != 10)
        assert len(await sqlite_inbox.list_events(EventFilter())) == 20
        assert await sqlite_inbox.list_quarantined() == []

class TestHeadLookups:
    """Per-key FIFO's lookups of a key's pending deliveries use the head index, so they cost the
    same with a backlog of millions: without statistics SQLite's planner chose deliveries_sink
    for them, which reads every pending delivery of the sink (12 ms a lookup at 20,000)."""

    LOOKUPS: ClassVar[dict[str, tuple[str, tuple[object, ...]]]] = {
        "unblock the next of a key": (delivery_rules._UNBLOCK_NEXT, ("erp", "erp", "order:o-7")),
        "earlier pending of a key": (delivery_rules._EARLIER_PENDING, ("erp", "order:o-7", 10**9)),
        "due heads": (delivery_rules._DUE, (1e12, SQLITE.array(["erp"]), 1e12, 8)),
        "requeue": (delivery_rules._REQUEUE, (0.0, 0, 0.0, 7, 0.0)),
        "new deliveries blocked?": (intake_rules._INSERT_DELIVERIES, (10**9, "order:o-7", 0.0, "order:o-7", 0.0,
                                                                      SQLITE.array(["erp"]))),
    }

    @pytest.mark.parametrize("name", list(LOOKUPS))
    async def test_uses_the_head_index(self, sqlite_inbox: SqliteInbox, db_path: Path, name: str) -> None:
        for i in range(200):  # a backlog: every event of its own key, all pending
            await sqlite_inbox.store(order_event(i, key=f"order:o-{i}"))
        text, params = self.LOOKUPS[name]
        with sqlite3.connect(db_path) as other:
            plan = " / ".join(row[3] for row in other.execute("EXPLAIN QUERY PLAN " + SQLITE.sql(text), params))
        assert "deliveries_head" in plan, plan
        assert "deliveries_sink" not in plan, plan


class TestMigrations:
    """The schema is versioned and migrated once, at open."""

    async def test_two_processes_open_a_new_file_together(self, db_path: Path) -> None:
        boxes = [SqliteInbox(db_path, StoreSettings(busy_timeout=10)) for _ in range(6)]
        await asyncio.gather(*(b.open() for b in boxes))
        for b in boxes:
            await b.close()
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)

    async def test_newer_schema_refuses_to_open(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True)
        with sqlite3.connect(db_path) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        with pytest.raises(StartupError, match="newer"):
            await SqliteInbox(db_path, StoreSettings()).open()

    async def test_unusable_path(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        with pytest.raises(StartupError, match="directory"):
            await SqliteInbox(blocker / "inbox.db", StoreSettings()).open()

    async def test_not_a_database(self, tmp_path: Path) -> None:
        path = tmp_path / "inbox.db"
        path.write_bytes(b"this is not sqlite" * 100)
        with pytest.raises(StartupError, match="Cannot open"):
            await SqliteInbox(path, StoreSettings()).open()


