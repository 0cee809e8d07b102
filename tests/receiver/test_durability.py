"""Every request answered 2xx survives a SIGKILL of the server in the middle of the load."""

from __future__ import annotations

import contextlib
import json
import signal
import threading

import httpx
import pytest
from tests.support.bodies import order_body
from tests.support.inbox import inbox_events
from tests.support.polling import eventually
from tests.support.servers import ServerFactory, wait_ready


@pytest.mark.slow  # a receiver under 16 senders, killed and restarted
class TestKillDuringLoad:
    """kill -9 while many requests are in flight loses nothing that was acknowledged."""

    def test_acknowledged_events_survive_sigkill(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("kill")
        acknowledged: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def sender() -> None:
            with httpx.Client(verify=server.ssl_context(), timeout=5) as client:
                for _ in range(2000):  # bounded even if the kill never came
                    if stop.is_set():
                        return
                    data = order_body()
                    mid = data["meta"]["messageId"]
                    try:
                        r = client.post(
                            server.url_orders,
                            content=json.dumps(data),
                            headers={**server.bearer(), "content-type": "application/json"},
                        )
                    except httpx.HTTPError:
                        return
                    if r.status_code in (200, 202):
                        with lock:
                            acknowledged.append(mid)

        threads = [threading.Thread(target=sender) for _ in range(16)]
        for t in threads:
            t.start()
        with contextlib.suppress(AssertionError):  # asserted below, after the senders stopped
            eventually(lambda: len(acknowledged) >= 200, 10, interval=0.01)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        stop.set()
        for t in threads:
            t.join(10)
        assert len(acknowledged) >= 200

        assert server.config_path is not None
        restarted = server_factory.start_with(server.config_path, 0, server.config_path.parent, wait=False)
        wait_ready(restarted)
        stored = {e.message_id for e in inbox_events(restarted)}
        missing = [m for m in acknowledged if m not in stored]
        assert not missing, f"{len(missing)} acknowledged events lost"
        # Stored exactly once each.
        events = inbox_events(restarted)
        ids = [e.message_id for e in events]
        assert len(ids) == len(set(ids))
        # Whole bodies: each acknowledged event's stored body is the JSON that was sent for it.
        by_id = {e.message_id: e for e in events}
        for mid in acknowledged:
            assert json.loads(by_id[mid].body)["meta"]["messageId"] == mid
