"""Faults around the receiver: the ERP sink, the disk, the store, the Tradecloud API.

Every case checks the same promises: nothing acknowledged is lost, a store that cannot take
writes answers 503 (with Retry-After) and recovers by itself, and the events of one key reach
the sink in arrival order.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.reliability.conftest import (
    FAST_DELIVERY,
    ErpEndpoint,
    attempts_of,
    order_event,
    pending_count,
    read_events,
    wait_until,
)
from tests.support.servers import RunningServer, ServerFactory

from tcwebhook.inbox.base import StoredEvent

pytestmark = pytest.mark.reliability

KEYS = 4
PER_KEY = 5


def _post(server: RunningServer, client: httpx.Client, data: dict[str, Any]) -> httpx.Response:
    return client.post(
        server.url_orders,
        content=json.dumps(data).encode(),
        headers={**server.bearer(), "content-type": "application/json"},
    )


def _send_interleaved(server: RunningServer, prefix: str) -> dict[str, list[str]]:
    """KEYS orders × PER_KEY events, round-robin; returns messageIds per order in send order."""
    sent: dict[str, list[str]] = {}
    with server.client() as client:
        for seq in range(PER_KEY):
            for k in range(KEYS):
                order_id = f"{prefix}-order-{k}"
                data = order_event(order_id, seq)
                r = _post(server, client, data)
                assert r.status_code == 202, r.text
                sent.setdefault(order_id, []).append(data["meta"]["messageId"])
    return sent


def _delivery_order(config: Path, events: Sequence[StoredEvent]) -> dict[str, list[str]]:
    """Per order: messageIds in the order their successful delivery started."""
    attempts = attempts_of(config, [e.event_id for e in events])
    delivered: dict[str, list[tuple[float, str]]] = {}
    for event in events:
        ok = [a for a in attempts[event.event_id] if a.outcome == "delivered"]
        assert ok, f"{event.event_id} has no delivered attempt"
        assert event.order_id is not None and event.message_id is not None
        delivered.setdefault(event.order_id, []).append((ok[0].started_at.timestamp(), event.message_id))
    return {key: [m for _, m in sorted(items)] for key, items in delivered.items()}


class TestErpFaults:
    """The ERP (http sink) down, erroring or too slow: events wait, then arrive complete and in order."""

    @pytest.mark.parametrize("fault", ["down", "erroring", "slow"])
    def test_nothing_lost_order_per_key_kept(
        self, fault: str, server_factory: ServerFactory, erp: ErpEndpoint
    ) -> None:
        extra = FAST_DELIVERY + f'[[sinks]]\nname = "erp"\ntype = "http"\nurl = "{erp.url}"\ntimeout = 0.5\n'
        server = server_factory.start(f"erp-{fault}", extra=extra)
        config = server.config_path
        assert config is not None
        if fault == "down":
            erp.stop()
        else:
            erp.mode = fault
        sent = _send_interleaved(server, fault)
        total = KEYS * PER_KEY

        # While the fault lasts, the dispatcher tries (and records failed attempts), delivers nothing.
        events = [e for e in read_events(config) if e.message_id]
        assert len(events) == total
        first = min(events, key=lambda e: e.seq).event_id  # the head of its key: attempted first
        assert wait_until(lambda: len(attempts_of(config, [first])[first]) >= 2, timeout=20), (
            "the dispatcher never retried during the fault"
        )
        assert erp.accepted == []
        assert pending_count(config) == total

        if fault == "down":
            erp.start()  # the same port again
        else:
            erp.mode = "ok"
        wanted = {m for ids in sent.values() for m in ids}
        assert wait_until(lambda: wanted <= set(erp.accepted_ids()), timeout=30), (
            f"{len(wanted - set(erp.accepted_ids()))} events never reached the ERP after it recovered"
        )
        assert wait_until(lambda: pending_count(config) == 0, timeout=10)

        # Order per key: the ERP saw each order's events in the order they were sent...
        seen: dict[str, list[str]] = {}
        for key, _event_id, body in list(erp.accepted):
            mid = json.loads(body)["meta"]["messageId"]
            assert key is not None
            order = key.removeprefix("order:")
            if mid not in seen.setdefault(order, []):
                seen[order].append(mid)
        assert seen == sent
        # ...and the inbox recorded the successful deliveries in that order too.
        assert _delivery_order(config, read_events(config)) == sent


@contextmanager
def _immutable(*paths: Path) -> Iterator[None]:
    """``chattr +i``: not even root may write these files; undone on exit."""
    present = [p for p in paths if p.exists()]
    subprocess.run(["chattr", "+i", *map(str, present)], check=True, timeout=10)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, present)], check=False, timeout=10)


def _chattr_works(tmp_path: Path) -> bool:
    probe = tmp_path / "chattr-probe"
    probe.write_text("x")
    try:
        done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, timeout=10, check=False)
    except OSError:
        return False
    subprocess.run(["chattr", "-i", str(probe)], capture_output=True, timeout=10, check=False)
    return done.returncode == 0


class TestStoreFaults:
    """A full disk or a read-only store: 503 with Retry-After, then recovery without a restart."""

    def _until_stored(self, server: RunningServer, client: httpx.Client, data: dict[str, Any]) -> int:
        """Resend like Tradecloud until a 2xx (bounded); returns how many 503s came first."""
        for refusals in range(100):
            r = _post(server, client, data)
            if r.status_code in (200, 202):
                return refusals
            assert r.status_code == 503, r.text
            time.sleep(0.1)
        raise AssertionError("the store never recovered")

    def _refused_while(self, server: RunningServer, client: httpx.Client, n: int) -> list[dict[str, Any]]:
        refused = []
        for i in range(n):
            data = order_event(f"fault-order-{i % 2}", 100 + i)
            r = _post(server, client, data)
            assert r.status_code == 503, f"{r.status_code}: {r.text}"
            assert r.headers.get("retry-after"), "a 503 without Retry-After"
            refused.append(data)
        return refused

    def test_disk_full(self, small_disk: Path, server_factory: ServerFactory) -> None:
        db = small_disk / "inbox.db"
        server = server_factory.start("disk-full", extra=f'[store]\nurl = "sqlite:///{db}"\n')
        assert server.config_path is not None
        acked = []
        with server.client() as client:
            for i in range(5):
                data = order_event("disk-order", i)
                assert _post(server, client, data).status_code == 202
                acked.append(data)
            filler = small_disk / "filler"
            # Unbuffered: no half-written buffer is left for the close to fail on.
            with filler.open("wb", buffering=0) as fh:
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                except OSError:
                    pass  # ENOSPC: the disk is full now
            refused = self._refused_while(server, client, 5)
            assert server.proc.poll() is None
            filler.unlink()
            for data in refused:
                self._until_stored(server, client, data)
                acked.append(data)
        stored = {e.message_id for e in read_events(server.config_path)}
        assert {d["meta"]["messageId"] for d in acked} <= stored
        assert len(stored) == len(acked)

    def test_read_only_store(self, tmp_path: Path, server_factory: ServerFactory) -> None:
        if not _chattr_works(tmp_path):
            pytest.skip("chattr +i is not available on this file system")
        server = server_factory.start("read-only")
        assert server.config_path is not None
        db = server.db_path
        acked = []
        with server.client() as client:
            for i in range(3):
                data = order_event("ro-order", i)
                assert _post(server, client, data).status_code == 202
                acked.append(data)
            with _immutable(db, db.with_name(db.name + "-wal")):
                refused = self._refused_while(server, client, 4)
                assert server.proc.poll() is None
            for data in refused:
                self._until_stored(server, client, data)
                acked.append(data)
        stored = {e.message_id for e in read_events(server.config_path)}
        assert {d["meta"]["messageId"] for d in acked} <= stored
        assert len(stored) == len(acked)


class TestTradecloudDown:
    """GET-webhook fetches while the Tradecloud API is unreachable, then answering 503, then back."""

    def test_fetches_wait_for_the_api(self, tmp_path: Path, server_factory: ServerFactory) -> None:
        from tests.tradecloud_api.fake_api import PASSWORD, USERNAME, FakeServer

        (tmp_path / "api").mkdir()
        api = FakeServer(tmp_path / "api")  # bound, not listening yet: connection refused
        outbox = tmp_path / "outbox"
        orders = [f"fetch-order-{k}" for k in range(3)]
        for order_id in orders:
            api.fake.add_order({"id": order_id, "buyerOrder": {"purchaseOrderNumber": f"PO-{order_id}"}})
        extra = (
            FAST_DELIVERY
            + f'[tradecloud]\napi_base = "{api.api_base}"\nusername = "{USERNAME}"\npassword = "{PASSWORD}"\n'
            + f'ca_bundle = "{api.ca_path}"\ntimeout = 2\nmax_retries = 0\n'
            + f'[[sinks]]\nname = "files"\ntype = "files"\ndirectory = "{outbox}"\n'
        )
        server = server_factory.start("tc-down", extra=extra)
        config = server.config_path
        assert config is not None
        api_started = False
        try:
            with server.client() as client:
                for _ in range(2):
                    for order_id in orders:
                        r = client.get(f"{server.url_orders}/{order_id}", headers=server.bearer())
                        assert r.status_code == 202, r.text
            events = list(read_events(config))
            assert len(events) == 2 * len(orders)
            first = min(events, key=lambda e: e.seq).event_id

            def retried_or_delivered() -> bool:
                tries = attempts_of(config, [first])[first]
                return len(tries) >= 2 or any(a.outcome == "delivered" for a in tries)

            assert wait_until(retried_or_delivered, timeout=20), "no fetch was attempted twice"
            assert not list(outbox.glob("*.json")), "triggers were delivered without fetching the order"
            # Up, but failing for a while: still nothing lost.
            api.fake.fail("/v2/order/", status=503, times=4)
            api.start()
            api_started = True
            assert wait_until(lambda: pending_count(config) == 0, timeout=30)
        finally:
            # The receiver first: the fake API then has no TLS connection left open when it stops
            # (uvicorn leaves the sockets of unfinished TLS shutdowns unclosed at its deadline).
            server.stop()
            if api_started:
                api.stop()
        final = {e.event_id: e for e in read_events(config)}
        assert {e.status for e in final.values()} <= {"delivered", "superseded"}
        delivered = [p for p in outbox.glob("*.json") if not p.name.startswith(".")]
        assert {json.loads(p.read_bytes()).get("id") for p in delivered} == set(orders)
        # Per key, successful deliveries started in arrival order.
        by_key: dict[str, list[tuple[int, float]]] = {}
        attempts = attempts_of(config, list(final))
        for event in final.values():
            ok = [a for a in attempts[event.event_id] if a.outcome == "delivered"]
            if ok:
                by_key.setdefault(event.key or "", []).append((event.seq, ok[0].started_at.timestamp()))
        for key, items in by_key.items():
            times = [t for _, t in sorted(items)]
            assert times == sorted(times), f"{key}: delivered out of order"
