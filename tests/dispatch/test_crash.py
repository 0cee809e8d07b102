"""A dispatcher killed with SIGKILL mid-delivery loses nothing: another one redelivers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tcwebhook.dispatch import Dispatcher

from .conftest import RecordingSink, opened, order, settings, settled

pytestmark = pytest.mark.anyio

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from tcwebhook.config import DeliverySettings, StoreSettings
    from tcwebhook.dispatch import Dispatcher
    from tcwebhook.inbox import SqliteInbox
    from tcwebhook.inbox.postgres import PostgresInbox

    class Hang:
        name = "erp"
        def accepts(self, event):
            return True
        async def deliver(self, event):
            print("delivering", event.event_id, flush=True)
            await asyncio.Event().wait()
        async def close(self):
            pass

    async def main():
        where = sys.argv[1]
        store = PostgresInbox if where.startswith("postgresql://") else SqliteInbox
        box = store(where, StoreSettings(), sinks=("erp",))
        await box.open()
        dispatcher = Dispatcher(
            box, [Hang()], DeliverySettings(lease_seconds=1.0, poll_interval=0.05), owner="doomed"
        )
        await dispatcher.start()
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


class TestKill9:
    """At-least-once across a kill -9: claimed deliveries come back after their lease."""

    async def test_redelivered_after_sigkill(self, db_path: Path) -> None:
        async with opened(db_path) as box:
            ids = [(await box.store(order(i))).event_id for i in range(3)]
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CHILD, str(db_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            try:
                assert child.stdout is not None
                seen: set[str] = set()
                async with asyncio.timeout(30):
                    while len(seen) < 3:
                        line = (await child.stdout.readline()).decode()
                        assert line, "the child exited early"
                        if line.startswith("delivering "):
                            seen.add(line.split()[-1])
                assert seen == set(ids)
                await asyncio.sleep(1.5)  # past one lease: the child's heartbeat kept its claims
                assert {d.claim_owner for e in ids for d in await box.deliveries(e)} == {"doomed"}
            finally:
                os.kill(child.pid, signal.SIGKILL)
                await child.wait()
            sink = RecordingSink()
            dispatcher = Dispatcher(box, [sink], settings(lease_seconds=5))
            await dispatcher.start()
            try:
                await settled(box, ids)
            finally:
                await dispatcher.stop()
            assert sorted(sink.calls) == sorted(ids)
            for event_id in ids:
                outcomes = [(a.outcome, a.error) for a in await box.attempts(event_id)]
                assert outcomes[0][0] == "abandoned" and "doomed" in (outcomes[0][1] or "")
                assert outcomes[1:] == [("delivered", None)]
