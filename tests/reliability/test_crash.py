"""SIGKILL at random moments under load: every 2xx is stored exactly once and delivered at least once."""

from __future__ import annotations

import json
import os
import random
import signal
import ssl
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from tests.reliability.conftest import FAST_DELIVERY, order_event, read_events, wait_until
from tests.support.servers import RunningServer, ServerFactory, wait_ready

pytestmark = pytest.mark.reliability

SENDERS = 12
KILLS = 5
MESSAGES_PER_SENDER = 3000  # an upper bound; the run stops long before


class _Load:
    """Sender threads that resend each message until it is acknowledged, like Tradecloud does."""

    def __init__(self, url: str, ca: Path, headers: dict[str, str]) -> None:
        self.url = url
        self.ca = ca
        self.headers = headers
        self.acked: dict[str, int] = {}  # messageId -> first 2xx status
        self.sent_first: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(SENDERS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def _run(self, index: int) -> None:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        client = httpx.Client(verify=ctx, timeout=5)
        try:
            for n in range(MESSAGES_PER_SENDER):
                # Several orders per thread, so per-key order is exercised as well.
                body = json.dumps(order_event(f"crash-order-{index}-{n % 5}", n)).encode()
                mid = json.loads(body)["meta"]["messageId"]
                for _attempt in range(200):  # bounded: ~20 s of a server that stays down
                    if self.stop.is_set():
                        return
                    try:
                        r = client.post(self.url, content=body, headers=self.headers)
                    except httpx.HTTPError:
                        time.sleep(0.1)
                        continue
                    if r.status_code in (200, 202):
                        with self.lock:
                            self.acked.setdefault(mid, r.status_code)
                        break
                    if r.status_code == 503:
                        time.sleep(0.1)
                        continue
                    raise AssertionError(f"unexpected {r.status_code}: {r.text[:200]}")
        finally:
            client.close()


class TestCrashDuringLoad:
    """kill -9 at random moments during load, several times, with a files sink delivering."""

    def test_every_acknowledged_event_stored_once_and_delivered(
        self, server_factory: ServerFactory, tmp_path: Path
    ) -> None:
        seed = int(os.environ.get("RELIABILITY_SEED", time.time_ns() % 1_000_000))
        rng = random.Random(seed)
        outbox = tmp_path / "outbox"
        extra = FAST_DELIVERY + f'[[sinks]]\nname = "files"\ntype = "files"\ndirectory = "{outbox}"\n'
        server = server_factory.start("crash", extra=extra)
        assert server.config_path is not None
        config, port, directory = server.config_path, server.port, server.config_path.parent
        headers = {**server.bearer(), "content-type": "application/json"}
        load = _Load(server.url_orders, server.ca_path, headers)
        load.start()
        current: RunningServer = server
        kills_done = 0
        try:
            for _ in range(KILLS):
                target = load.count() + 100
                # A random moment once the load is flowing again: acks coming in, deliveries running.
                wait_until(lambda: load.count() >= target, timeout=20, interval=0.02)  # noqa: B023
                time.sleep(rng.uniform(0.0, 0.8))
                current.proc.send_signal(signal.SIGKILL)
                current.proc.wait(10)
                kills_done += 1
                current = server_factory.start_with(config, port, directory, wait=False)
                wait_ready(current)
            final = load.count()
            wait_until(lambda: load.count() >= final + 30, timeout=20, interval=0.02)
        finally:
            load.join()
        acked = dict(load.acked)
        assert kills_done == KILLS
        assert len(acked) >= 100, f"too little load got through (seed {seed})"

        # Stored exactly once: every acknowledged messageId, and no messageId twice.
        events = read_events(config)
        stored = Counter(e.message_id for e in events)
        missing = [m for m in acked if stored[m] == 0]
        doubled = [m for m, n in stored.items() if n > 1]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged events lost (seed {seed})"
        assert not doubled, f"{len(doubled)} events stored twice (seed {seed})"

        # Delivered at least once: the dispatcher drains what the kills left pending.
        by_id = {e.event_id: e for e in events if e.message_id in acked}

        def delivered_ids() -> set[str]:
            names = [p.name for p in outbox.glob("*.json") if not p.name.startswith(".")]
            return {Path(n).stem.split("_")[4] for n in names}

        drained = wait_until(lambda: set(by_id) <= delivered_ids(), timeout=60, interval=0.25)
        undelivered = set(by_id) - delivered_ids()
        assert drained, f"{len(undelivered)} acknowledged events never delivered (seed {seed})"
        # What was delivered is the stored body, byte for byte.
        for path in outbox.glob("*.json"):
            event_id = path.stem.split("_")[4]
            if event_id in by_id:
                assert path.read_bytes() == by_id[event_id].body, path.name
        current.stop()
        duplicates = sum(1 for status in acked.values() if status == 200)
        print(f"crash: seed {seed}, {kills_done} SIGKILLs, {len(acked)} acknowledged ({duplicates} as duplicates "
              f"of a resend), {len(events)} stored, all delivered")
