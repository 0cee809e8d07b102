from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcwebhook.inbox import sqlite_writer as writer_module
from tcwebhook.inbox.sqlite_writer import GroupCommitWriter


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[GroupCommitWriter]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
        return conn

    w = GroupCommitWriter(connect, max_batch=64, name="test-writer")
    w.start()
    yield w
    w.close()


def insert(value: int) -> writer_module.Op:
    def op(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        return value

    return op


class TestLinger:
    """The writer waits for more writes only while the event loop runs late."""

    def test_an_idle_loop_gets_no_linger(self, writer: GroupCommitWriter, monkeypatch: pytest.MonkeyPatch) -> None:
        # A linger far longer than a commit, so the bound below holds on a loaded machine too.
        monkeypatch.setattr(writer_module, "LINGER", 10.0)

        async def main() -> None:
            assert await writer.submit(insert(0)) == 0
            assert writer.loop_lag >= 0  # measured by the settle callback
            writer.loop_lag = 0.0
            started = time.monotonic()
            assert await writer.submit(insert(1)) == 1
            assert time.monotonic() - started < 5

        asyncio.run(main())
        assert writer.commits == 2

    def test_a_late_loop_shares_one_commit(self, writer: GroupCommitWriter, monkeypatch: pytest.MonkeyPatch) -> None:
        # The second write comes 0.05 s in: a linger of 1 s has it in time even on a loaded machine.
        monkeypatch.setattr(writer_module, "LINGER", 1.0)

        async def main() -> list[int]:
            loop = asyncio.get_running_loop()
            writer.loop_lag = 1.0  # as if the loop had run the last settle callback a second late
            started = time.monotonic()
            first = writer.submit(insert(0))
            later: asyncio.Future[asyncio.Future[int]] = loop.create_future()
            loop.call_later(0.05, lambda: later.set_result(writer.submit(insert(1))))
            values = [await first, await (await later)]
            assert time.monotonic() - started >= 1.0
            return values

        assert asyncio.run(main()) == [0, 1]
        assert (writer.commits, writer.operations) == (1, 2)
