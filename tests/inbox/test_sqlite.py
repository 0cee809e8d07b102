"""The SQLite inbox through its public API, on real database files."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tcwebhook.config import StoreSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import EventNotFound, StartupError, StoreUnavailable
from tcwebhook.inbox import EventFilter, EventStatus, SqliteInbox
from tcwebhook.inbox.migrations import SCHEMA_VERSION

from .conftest import order_event, shipment_event

pytestmark = pytest.mark.anyio


class TestStore:
    """store() keeps the event byte-for-byte and answers with a stable, sortable id."""

    async def test_round_trip(self, inbox: SqliteInbox) -> None:
        event = order_event(1, body=b"\x00binary\xff body")
        result = await inbox.store(event)
        assert not result.duplicate
        assert uuid.UUID(result.event_id).version == 7
        stored = await inbox.get_event(result.event_id)
        assert stored.body == b"\x00binary\xff body"
        assert stored.seq == result.seq
        assert stored.kind is EventKind.ORDER
        assert stored.dedupe_key == "msg-1"
        assert stored.key == "order:o-1"
        assert stored.purchase_order_number == "PO-1"
        assert stored.last_updated_at == "2025-05-02T08:15:29.987Z"
        assert stored.headers == {"content-type": "application/json", "authorization": "[redacted]"}
        assert stored.status == EventStatus.PENDING
        assert abs(stored.received_at - datetime.now(UTC)) < timedelta(seconds=10)

    async def test_seq_follows_arrival_and_ids_sort_by_time(self, inbox: SqliteInbox) -> None:
        results = [await inbox.store(order_event(i)) for i in range(5)]
        assert [r.seq for r in results] == sorted(r.seq for r in results)
        assert len({r.event_id for r in results}) == 5
        assert [r.event_id[:8] for r in results] == sorted(r.event_id[:8] for r in results)

    async def test_duplicate_returns_the_first_event(self, inbox: SqliteInbox) -> None:
        first = await inbox.store(order_event(7))
        again = await inbox.store(order_event(7, body=b"{}"))
        assert again.duplicate
        assert (again.event_id, again.seq) == (first.event_id, first.seq)
        assert len(await inbox.list_events(EventFilter())) == 1
        assert len(await inbox.deliveries(first.event_id)) == 1

    async def test_concurrent_duplicates_store_once(self, inbox: SqliteInbox) -> None:
        results = await asyncio.gather(*(inbox.store(order_event(3)) for _ in range(40)))
        assert sum(not r.duplicate for r in results) == 1
        assert len({r.event_id for r in results}) == 1

    async def test_deliveries_created_with_the_event(self, db_path: Path) -> None:
        box = SqliteInbox(db_path, StoreSettings(), sinks=("erp", "archive"))
        await box.open()
        try:
            result = await box.store(order_event(1))
            deliveries = await box.deliveries(result.event_id)
            assert [(d.sink, d.status, d.attempts) for d in deliveries] == [
                ("archive", "pending", 0),
                ("erp", "pending", 0),
            ]
            assert all(d.next_attempt_at is not None for d in deliveries)
        finally:
            await box.close()

    async def test_without_sinks_the_event_is_only_stored(self, db_path: Path) -> None:
        box = SqliteInbox(db_path, StoreSettings())
        await box.open()
        try:
            result = await box.store(order_event(1))
            assert (await box.get_event(result.event_id)).status == EventStatus.STORED
            assert await box.deliveries(result.event_id) == []
        finally:
            await box.close()

    async def test_held_deliveries_wait_for_the_request(self, db_path: Path) -> None:
        box = SqliteInbox(db_path, StoreSettings(), sinks=("erp",), hold_new=True)
        await box.open()
        try:
            result = await box.store(order_event(1))
            (delivery,) = await box.deliveries(result.event_id)
            assert delivery.status == "pending"
            assert delivery.next_attempt_at is None
        finally:
            await box.close()


class TestDurability:
    """A stored event is committed and visible to other connections and processes."""

    async def test_visible_to_another_connection_when_store_returns(
        self, inbox: SqliteInbox, db_path: Path
    ) -> None:
        result = await inbox.store(order_event(1))
        with sqlite3.connect(db_path) as other:
            row = other.execute("SELECT event_id FROM events WHERE seq = ?", (result.seq,)).fetchone()
        assert row == (result.event_id,)

    async def test_wal_and_full_sync(self, inbox: SqliteInbox, db_path: Path) -> None:
        await inbox.store(order_event(1))
        with sqlite3.connect(db_path) as other:
            assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert other.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        # synchronous is per connection: ask the writer's own.
        assert await inbox._write(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]) == 2

    async def test_survives_reopen(self, db_path: Path) -> None:
        box = SqliteInbox(db_path, StoreSettings(), sinks=("erp",))
        await box.open()
        result = await box.store(order_event(1))
        await box.close()
        box = SqliteInbox(db_path, StoreSettings(), sinks=("erp",))
        await box.open()
        try:
            assert (await box.get_event(result.event_id)).body == order_event(1).body
            assert (await box.store(order_event(1))).duplicate
        finally:
            await box.close()

    async def test_another_process_writes_and_reads_beside_us(
        self, inbox: SqliteInbox, db_path: Path
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
            await inbox.store(order_event(i))
        out, err = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == 0, err.decode()
        assert int(out.split()[-1]) >= 150
        events = await inbox.list_events(EventFilter(limit=10_000))
        assert len(events) == 300
        assert len({e.seq for e in events}) == 300


class TestGroupCommit:
    """Concurrent stores share transactions: fewer commits (fsyncs) than stores."""

    async def test_64_concurrent_writers(self, inbox: SqliteInbox) -> None:
        writers, per_writer = 64, 40
        commits_before = inbox.commits
        started = time.perf_counter()

        async def writer(w: int) -> None:
            for n in range(per_writer):
                result = await inbox.store(order_event(w * per_writer + n))
                assert not result.duplicate

        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - started
        stores = writers * per_writer
        commits = inbox.commits - commits_before
        print(f"\ngroup commit: {stores} stores by {writers} writers in {elapsed:.3f}s = "
              f"{stores / elapsed:.0f} stores/s, {commits} commits ({stores / commits:.1f} stores/commit)")
        assert commits < stores / 4
        assert len(await inbox.list_event_ids(EventFilter(limit=10_000))) == stores

    async def test_writers_on_several_threads_and_loops(self, inbox: SqliteInbox) -> None:
        commits_before = inbox.commits
        errors: list[BaseException] = []

        def thread_main(t: int) -> None:
            async def go() -> None:
                await asyncio.gather(*(inbox.store(order_event(10_000 + t * 100 + i)) for i in range(100)))

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
        assert inbox.commits - commits_before < 400
        assert len(await inbox.list_event_ids(EventFilter(limit=10_000))) == 400


class TestFailures:
    """Store failures surface as StoreUnavailable; the writer survives and recovers."""

    async def test_locked_database(self, inbox: SqliteInbox, db_path: Path) -> None:
        await inbox.store(order_event(1))
        holder = sqlite3.connect(db_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreUnavailable, match="locked"):
                await inbox.store(order_event(2))
            with pytest.raises(StoreUnavailable):
                await inbox.quarantine(
                    route="orders", content_type="text/plain", body=b"x", headers={}, reason="r", status_code=415
                )
            with pytest.raises(StoreUnavailable):
                await inbox.ping()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        await inbox.ping()
        result = await inbox.store(order_event(2))
        assert not result.duplicate  # the failed attempt left nothing behind
        assert len(await inbox.list_events(EventFilter())) == 2

    async def test_disk_full(self, inbox: SqliteInbox) -> None:
        await inbox.store(order_event(1))
        pages = await inbox._write(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
        # A real SQLITE_FULL from the writer's own connection: it may not grow the file.
        await inbox._write(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}"))
        big = b"x" * 200_000
        with pytest.raises(StoreUnavailable, match="full"):
            await inbox.store(order_event(2, body=big))
        await inbox._write(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
        assert not (await inbox.store(order_event(2, body=big))).duplicate

    async def test_a_failing_operation_fails_alone(self, inbox: SqliteInbox) -> None:
        def broken(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO quarantine (id) VALUES ('half')")  # violates NOT NULL

        outcomes = await asyncio.gather(
            *(inbox.store(order_event(i)) for i in range(10)),
            inbox._write(broken),
            *(inbox.store(order_event(i)) for i in range(10, 20)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[10], StoreUnavailable)
        assert all(not isinstance(o, BaseException) for i, o in enumerate(outcomes) if i != 10)
        assert len(await inbox.list_events(EventFilter())) == 20
        assert await inbox.list_quarantined() == []

    async def test_closed_inbox(self, db_path: Path) -> None:
        box = SqliteInbox(db_path, StoreSettings(), sinks=("erp",))
        await box.open()
        await box.close()
        with pytest.raises(StoreUnavailable):
            await box.store(order_event(1))
        with pytest.raises(StoreUnavailable):
            await box.get_event("x")


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


class TestQuarantine:
    """Rejected bodies are kept with their reason and can be reprocessed."""

    async def test_keep_list_get(self, inbox: SqliteInbox) -> None:
        first = await inbox.quarantine(
            route="orders", content_type="text/plain", body=b"nope", headers={"x-a": "1"},
            reason="unsupported media type", status_code=415,
        )
        second = await inbox.quarantine(
            route="shipments", content_type="application/json", body=b"{", headers={},
            reason="not JSON", status_code=400,
        )
        entries = await inbox.list_quarantined()
        assert [e.id for e in entries] == [second, first]
        entry = await inbox.get_quarantined(first)
        assert (entry.route, entry.body, entry.reason, entry.status_code) == (
            "orders", b"nope", "unsupported media type", 415,
        )
        assert entry.headers == {"x-a": "1"}
        assert entry.reprocessed_event_id is None
        with pytest.raises(EventNotFound):
            await inbox.get_quarantined("missing")

    async def test_reprocess(self, inbox: SqliteInbox) -> None:
        qid = await inbox.quarantine(
            route="orders", content_type="application/json", body=b"{}", headers={},
            reason="bad", status_code=400,
        )
        result = await inbox.reprocess_quarantined(qid, order_event(5))
        assert (await inbox.get_quarantined(qid)).reprocessed_event_id == result.event_id
        assert (await inbox.get_event(result.event_id)).status == EventStatus.PENDING
        with pytest.raises(EventNotFound):
            await inbox.reprocess_quarantined("missing", order_event(6))
        assert len(await inbox.list_events(EventFilter())) == 1


class TestQueries:
    """Listing and filtering events for operators."""

    async def test_filters(self, inbox: SqliteInbox) -> None:
        for i in range(6):
            await inbox.store(order_event(i))
        await inbox.store(shipment_event(1))
        everything = await inbox.list_events(EventFilter())
        assert [e.seq for e in everything] == sorted((e.seq for e in everything), reverse=True)
        assert len(await inbox.list_events(EventFilter(kind=EventKind.SHIPMENT))) == 1
        assert len(await inbox.list_events(EventFilter(event_name="Order*"))) == 6
        assert len(await inbox.list_events(EventFilter(event_name="*Updated"))) == 1
        assert len(await inbox.list_events(EventFilter(number="PO-3"))) == 1
        assert len(await inbox.list_events(EventFilter(number="o-0"))) == 2  # order id, via the key
        assert len(await inbox.list_events(EventFilter(number="SN-1"))) == 1
        assert len(await inbox.list_events(EventFilter(number="s-1"))) == 1
        assert len(await inbox.list_events(EventFilter(status="pending"))) == 7
        assert len(await inbox.list_events(EventFilter(status="dead"))) == 0
        assert len(await inbox.list_events(EventFilter(limit=2))) == 2
        future = datetime.now(UTC) + timedelta(hours=1)
        assert await inbox.list_events(EventFilter(since=future)) == []
        assert len(await inbox.list_events(EventFilter(until=future))) == 7
        ids = await inbox.list_event_ids(EventFilter())
        assert ids == [e.event_id for e in reversed(everything)]
        assert await inbox.status_counts() == {"pending": 7, "dead": 0}
        assert await inbox.pending_sinks() == ["erp"]

    async def test_unknown_event(self, inbox: SqliteInbox) -> None:
        with pytest.raises(EventNotFound):
            await inbox.get_event("nope")
        assert await inbox.deliveries("nope") == []
        assert await inbox.attempts("nope") == []
