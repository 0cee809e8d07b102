"""``tcwebhook db``: migrate, status, prune and copy, on real SQLite files and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
import typer
from tests.support.polling import eventually_async
from typer.testing import CliRunner

from tcwebhook.audit import AuditEntry, AuditLog, verify
from tcwebhook.cli import db
from tcwebhook.config import StoreSettings, load_settings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.dispatch import Dispatcher
from tcwebhook.inbox import (
    AttemptOutcome,
    AttemptResult,
    DeliveryStatus,
    Inbox,
    NewEvent,
    SqliteInbox,
    open_inbox,
)
from tcwebhook.inbox.copy import COLUMNS, copy_store
from tcwebhook.inbox.postgres import PostgresInbox
from tcwebhook.inbox.schema import SCHEMA_VERSION

CLI = [sys.executable, "-m", "tcwebhook.cli"]
DAY = 86_400.0


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    db.register(app)
    return app


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'inbox.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "tcwebhook.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n\n[store]\nurl = "{store_url}"\n\n'
        f'[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "{tmp_path / "outbox"}"\n'
    )
    return path


def invoke(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, ["db", *args], env={"COLUMNS": "250"})


def event(i: int, key: str | None = None, **overrides: Any) -> NewEvent:
    fields: dict[str, Any] = {
        "kind": EventKind.ORDER,
        "event_name": "OrderIssuedByBuyer",
        "dedupe_key": f"m-{i}",
        "content_type": "application/json",
        "body": b'{"n": %d, "bin": "\xff\x00"}' % i,
        "key": key or f"order:o-{i}",
        "order_id": f"o-{i}",
        "headers": {"user-agent": "tradecloud"},
    }
    fields.update(overrides)
    return NewEvent(**fields)


def shipment(i: int, updated: str) -> NewEvent:
    return NewEvent(
        kind=EventKind.SHIPMENT,
        event_name="ShipmentUpdated",
        dedupe_key=f"s-{i}",
        content_type="application/json",
        body=b'{"s": %d}' % i,
        key="shipment:s-1",
        shipment_id="s-1",
        last_updated_at=updated,
    )


async def settle(inbox: Inbox, status: DeliveryStatus, *, limit: int = 100) -> list[str]:
    """Claim what is due and settle it all with ``status``; the event ids."""
    claims = await inbox.claim_due(
        owner="test", sinks=["erp"], limit=limit, lease=30, stale_kinds=frozenset({EventKind.SHIPMENT})
    )
    outcome = {
        DeliveryStatus.DELIVERED: AttemptOutcome.DELIVERED,
        DeliveryStatus.DEAD: AttemptOutcome.PERMANENT,
        DeliveryStatus.PENDING: AttemptOutcome.TRANSIENT,
    }[status]
    for claim in claims:
        await inbox.finish(
            claim,
            AttemptResult(
                status,
                outcome,
                time.time(),
                0.01,
                None if status is DeliveryStatus.DELIVERED else "ERP said no",
                time.time() + 3600 if status is DeliveryStatus.PENDING else None,
            ),
        )
    return [c.event.event_id for c in claims]


def backdate(url: str, seconds: float, table: str | None = None, column: str | None = None) -> None:
    """Make everything in the store (or one table's time column) ``seconds`` older, as if it had
    happened then."""
    statements = (
        (f"UPDATE {table} SET {column} = {column} - {{s}}",) if table else
        ("UPDATE events SET received_at = received_at - {s}", "UPDATE deliveries SET updated_at = updated_at - {s}")
    )
    if url.startswith("postgresql://"):
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.format(s=seconds))  # type: ignore[arg-type]
    else:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            for statement in statements:
                conn.execute(statement.format(s=seconds))


class TestMigrateStatus:
    """``db migrate`` makes the schema; ``db status`` prints its version and the row counts."""

    def test_migrate_then_status(self, app: typer.Typer, config: Path) -> None:
        # Each store numbers its own schema versions.
        version = SCHEMA_VERSION
        first = invoke(app, "migrate", "--config", str(config))
        assert first.exit_code == 0, first.output
        assert f"migrated from version 0 to {version}" in first.stdout
        again = invoke(app, "migrate", "--config", str(config))
        assert f"schema version {version}, up to date" in again.stdout

        async def fill() -> None:
            inbox = open_inbox(load_settings(config))
            await inbox.open()
            try:
                for i in range(3):
                    await inbox.store(event(i))
                await settle(inbox, DeliveryStatus.DELIVERED, limit=1)
            finally:
                await inbox.close()

        asyncio.run(fill())
        status = invoke(app, "status", "--config", str(config), "--json")
        assert status.exit_code == 0, status.output
        data = json.loads(status.stdout)
        assert data["schema_version"] == version
        rows = {"events": 3, "deliveries": 3, "attempts": 1, "watermarks": 0, "quarantine": 0, "audit": 0}
        assert data["rows"] == rows
        assert data["events"] == {"delivered": 1, "pending": 2}
        assert "pg-secret" not in status.stdout
        table = invoke(app, "status", "--config", str(config))
        assert f"schema version {version}" in table.stdout and "events delivered" in table.stdout


class TestPrune:
    """Delivered events older than the span go, with their attempts; pending and dead ones stay."""

    def test_prune(self, app: typer.Typer, config: Path, store_url: str) -> None:
        async def fill() -> dict[str, list[str]]:
            inbox = open_inbox(load_settings(config))
            await inbox.open()
            try:
                ids = [(await inbox.store(event(i))).event_id for i in range(12)]
                delivered = await settle(inbox, DeliveryStatus.DELIVERED, limit=6)
                dead = await settle(inbox, DeliveryStatus.DEAD, limit=3)
                retrying = await settle(inbox, DeliveryStatus.PENDING, limit=1)
                return {"all": ids, "delivered": delivered, "dead": dead, "retrying": retrying}
            finally:
                await inbox.close()

        ids = asyncio.run(fill())
        backdate(store_url, 40 * DAY)

        async def fresh() -> str:
            inbox = open_inbox(load_settings(config))
            await inbox.open()
            try:
                new = (await inbox.store(event(100))).event_id
                await settle(inbox, DeliveryStatus.DELIVERED)
                return new
            finally:
                await inbox.close()

        recent = asyncio.run(fresh())  # delivered just now: kept
        result = invoke(
            app, "prune", "--config", str(config), "--delivered-older-than", "30d", "--batch", "4", "--json"
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["deleted"] == 6

        async def left() -> tuple[set[str], int]:
            inbox = open_inbox(load_settings(config))
            await inbox.open()
            try:
                from tcwebhook.inbox import EventFilter

                remaining = set(await inbox.list_event_ids(EventFilter(limit=1000)))
                info = await inbox.describe()
                return remaining, info.rows["attempts"]
            finally:
                await inbox.close()

        remaining, attempts = asyncio.run(left())
        assert remaining == (set(ids["all"]) - set(ids["delivered"])) | {recent}
        assert attempts == 3 + 1 + 3  # dead, retrying, and the three delivered just now
        bad = invoke(app, "prune", "--config", str(config), "--delivered-older-than", "soon")
        assert bad.exit_code == 2


class _Nothing:
    name = "erp"

    def accepts(self, event: object) -> bool:
        return True

    async def deliver(self, event: object) -> None:
        return None

    async def close(self) -> None:
        return None


async def _open(store_url: str, settings: StoreSettings) -> Inbox:
    inbox: Inbox
    if store_url.startswith("postgresql://"):
        inbox = PostgresInbox(store_url, settings, sinks=("erp",))
    else:
        inbox = SqliteInbox(store_url, settings, sinks=("erp",))
    await inbox.open()
    return inbox


async def _until(inbox: Inbox, done: Callable[[], Awaitable[bool]]) -> None:
    """Run a dispatcher until ``done`` holds (or ten seconds pass: the caller's assertion says what is left)."""
    dispatcher = Dispatcher(inbox, [_Nothing()], load_settings().delivery)  # type: ignore[list-item]
    await dispatcher.start()
    try:
        with contextlib.suppress(AssertionError):
            await eventually_async(done, 10)
    finally:
        await dispatcher.stop()


class TestRetention:
    """``[store] retention`` and ``audit_retention`` make the dispatcher prune on its own."""

    @pytest.mark.anyio
    @pytest.mark.parametrize("anyio_backend", ["asyncio"])
    async def test_dispatcher_prunes(self, store_url: str, anyio_backend: str) -> None:
        inbox = await _open(store_url, StoreSettings(retention="1h"))
        try:
            ids = [(await inbox.store(event(i))).event_id for i in range(4)]
            await settle(inbox, DeliveryStatus.DELIVERED)
            backdate(store_url, 3 * 3600)

            async def pruned() -> bool:
                return not (await inbox.describe()).rows["events"]

            await _until(inbox, pruned)
            assert (await inbox.describe()).rows["events"] == 0, ids
        finally:
            await inbox.close()

    @pytest.mark.anyio
    @pytest.mark.parametrize("anyio_backend", ["asyncio"])
    async def test_dispatcher_expires_audit_entries(self, store_url: str, anyio_backend: str) -> None:
        inbox = await _open(store_url, StoreSettings(audit_retention="1h"))
        try:
            log = AuditLog(inbox)
            for i in range(3):
                await log.record(AuditEntry(actor="olga", source="cli@host", action="db.prune", target=f"old-{i}"))
            backdate(store_url, 3 * 3600, table="audit", column="at")
            for i in range(2):
                await log.record(AuditEntry(actor="olga", source="cli@host", action="db.prune", target=f"new-{i}"))

            async def expired() -> bool:
                return len(await inbox.audit_entries()) == 2

            await _until(inbox, expired)
            assert [r.target for r in await inbox.audit_entries()] == ["new-0", "new-1"]
            report = await verify(inbox)
            assert (report.checked, report.broken) == (2, None)
        finally:
            await inbox.close()


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def copied(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """``dump`` of a destination, less the audit entries its copies recorded (``db.copy``)."""
    tables = dump(url)
    tables["audit"] = [row for row in tables["audit"] if row[4] != "db.copy"]
    return tables


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a comparable form."""
    order = {"events": "seq", "deliveries": "seq, sink", "attempts": "id", "watermarks": "sink, key, kind",
             "quarantine": "id", "reconciled": "seq", "service_state": "name", "book_entries": "key",
             "book_lines": "key, line_key", "book_documents": "key, doc_key", "book_fetches": "fetch_id",
             "contract_drift": "what, detail", "traces": "seq", "audit": "seq", "console_sessions": "token_hash"}
    tables: dict[str, list[tuple[Any, ...]]] = {}
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as conn:
            for table, cols in COLUMNS.items():
                rows = conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order[table]}").fetchall()  # type: ignore[arg-type]
                tables[table] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
    else:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            for table, cols in COLUMNS.items():
                rows = conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order[table]}").fetchall()
                tables[table] = [tuple(r) for r in rows]
    return tables


class TestCopy:
    """SQLite → PostgreSQL → SQLite, interrupted once and rerun: everything arrives, once."""

    def test_copy_both_ways(self, tmp_path: Path, pg_url: str) -> None:
        source = f"sqlite:///{tmp_path / 'source.db'}"

        async def fill() -> None:
            inbox = SqliteInbox(source.removeprefix("sqlite:///"), StoreSettings(), sinks=("erp",))
            await inbox.open()
            try:
                await inbox.store(shipment(1, "2025-01-02T00:00:00Z"))
                await inbox.store(shipment(2, "2025-01-01T00:00:00Z"))  # older: superseded later
                for i in range(60):
                    await inbox.store(event(i, key=f"order:o-{i % 7}", reconciled=i % 20 == 0,
                                            trace_context=TRACEPARENT if i % 9 == 0 else None))
                for action in ("events.replay", "db.prune"):
                    await AuditLog(inbox).record(AuditEntry(actor="olga", source="cli@host", action=action))
                await inbox.put_session("d" * 64, "olga", "operator", "csrf-token", 1.0)
                await inbox.set_state("reconcile.cursor", "2025-01-02T00:00:00Z")
                await settle(inbox, DeliveryStatus.DELIVERED, limit=5)
                await settle(inbox, DeliveryStatus.DEAD, limit=2)
                await settle(inbox, DeliveryStatus.PENDING, limit=2)
                for n in range(3):
                    await inbox.quarantine(
                        route="orders", content_type="text/plain", body=b"nope %d" % n, headers={"x": "y"},
                        reason="unsupported media type", status_code=415,
                    )
            finally:
                await inbox.close()

        asyncio.run(fill())
        before = dump(source)
        assert before["watermarks"] and before["attempts"] and len(before["quarantine"]) == 3
        assert len(before["reconciled"]) == 3 and before["service_state"]
        assert len(before["traces"]) == 7 and len(before["audit"]) == 2 and before["console_sessions"]

        class Interrupted(Exception):
            pass

        seen: list[int] = []

        def stop_after_two_batches(done: int, total: int) -> None:
            seen.append(done)
            if len(seen) == 3:
                raise Interrupted

        with pytest.raises(Interrupted):
            copy_store(source, pg_url, batch=8, progress=stop_after_two_batches)
        partial = dump(pg_url)
        assert 0 < len(partial["events"]) < len(before["events"])

        rerun = subprocess.run(
            [*CLI, "db", "copy", "--from", source, "--to", pg_url, "--batch", "8"],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert rerun.returncode == 0, rerun.stderr
        assert "counts match" in rerun.stdout
        assert "pg-secret" not in rerun.stdout + rerun.stderr
        assert copied(pg_url) == before
        again = subprocess.run(
            [*CLI, "db", "copy", "--from", source, "--to", pg_url], capture_output=True, text=True,
            timeout=120, check=False,
        )
        assert again.returncode == 0, again.stderr
        assert copied(pg_url) == before

        back = f"sqlite:///{tmp_path / 'back.db'}"
        home = subprocess.run(
            [*CLI, "db", "copy", "--from", pg_url, "--to", back], capture_output=True, text=True,
            timeout=120, check=False,
        )
        assert home.returncode == 0, home.stderr
        assert copied(back) == before

        async def still_works() -> None:
            inbox = PostgresInbox(pg_url, StoreSettings(), sinks=("erp",))
            await inbox.open()
            try:
                result = await inbox.store(event(999))
                assert result.seq > max(r[0] for r in before["events"])
                assert (await inbox.store(event(3))).duplicate
            finally:
                await inbox.close()

        asyncio.run(still_works())

    def test_refuses_a_foreign_destination(self, tmp_path: Path) -> None:
        async def fill(path: Path, prefix: str) -> None:
            inbox = SqliteInbox(path, StoreSettings(), sinks=("erp",))
            await inbox.open()
            try:
                await inbox.store(event(1, dedupe_key=f"{prefix}-1"))
            finally:
                await inbox.close()

        asyncio.run(fill(tmp_path / "a.db", "a"))
        asyncio.run(fill(tmp_path / "b.db", "b"))
        done = subprocess.run(
            [*CLI, "db", "copy", "--from", f"sqlite:///{tmp_path / 'a.db'}", "--to", f"sqlite:///{tmp_path / 'b.db'}"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 3
        assert "not from" in done.stderr
