"""A retry of the same bytes answered from memory (``receiver/recent.py``).

The receiver runs in-process on a real SQLite inbox (``test_status.start``). That an answer came
from memory is shown by closing the store first: the store path then answers 503, memory 200.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from tests.receiver.test_status import JSON, ORDERS, Running, order_body, start

from tcwebhook.config import ServerSettings, StoreSettings
from tcwebhook.receiver.recent import MAX_TTL, RecentBodies

pytestmark = pytest.mark.anyio

SHIPMENTS = "http://receiver/tradecloud/shipments"


async def stored_then_store_closed(running: Running, body: bytes) -> str:
    first = await running.client.post(ORDERS, content=body, headers=JSON)
    assert first.status_code == 202
    await running.service.inbox.close()
    event_id: str = first.json()["eventId"]
    return event_id


class TestRetry:
    async def test_same_bytes_answered_as_the_duplicate_without_the_store(self, tmp_path: Path) -> None:
        async with start(tmp_path) as running:
            body = order_body()
            event_id = await stored_then_store_closed(running, body)
            with capture_logs() as logs:
                again = await running.client.post(ORDERS, content=body, headers=JSON)
            assert again.status_code == 200
            assert again.json() == {"status": "duplicate", "eventId": event_id}
            line = next(e for e in logs if e["event"] == "request")
            assert (line["event_id"], line["kind"], line["duplicate"], line["status"]) == (event_id, "order", True, 200)
            assert line["event_name"] == "OrderIssuedByBuyer"
            registry = running.receiver.metrics.registry
            assert registry.get_sample_value("tcwebhook_events_total", {"kind": "order", "outcome": "duplicate"}) == 1
            # A new body needs the store, which is closed: the store path really is not taken above.
            fresh = await running.client.post(ORDERS, content=order_body(), headers=JSON)
            assert fresh.status_code == 503

    async def test_a_changed_byte_takes_the_store_path(self, tmp_path: Path) -> None:
        async with start(tmp_path) as running:
            body = order_body()
            await stored_then_store_closed(running, body)
            again = await running.client.post(ORDERS, content=body + b" ", headers=JSON)
            assert again.status_code == 503

    @pytest.mark.parametrize(
        "headers",
        [{**JSON, "content-type": "application/json; charset=utf-8"}, {**JSON, "content-encoding": "identity"}],
        ids=["content-type", "content-encoding"],
    )
    async def test_other_headers_take_the_store_path(self, tmp_path: Path, headers: dict[str, str]) -> None:
        async with start(tmp_path) as running:
            body = order_body()
            await stored_then_store_closed(running, body)
            again = await running.client.post(ORDERS, content=body, headers=headers)
            assert again.status_code == 503

    async def test_the_same_bytes_on_the_other_route_are_parsed(self, tmp_path: Path) -> None:
        async with start(tmp_path) as running:
            body = order_body()
            await stored_then_store_closed(running, body)
            # An order body is no shipment webhook: refused (it cannot be quarantined, the store is closed).
            again = await running.client.post(SHIPMENTS, content=body, headers=JSON)
            assert again.status_code == 503
            assert again.json()["error"] == "unavailable"

    async def test_a_refused_body_is_not_remembered(self, tmp_path: Path) -> None:
        async with start(tmp_path) as running:
            bad = b'{"no": "eventName"}'
            statuses = [(await running.client.post(ORDERS, content=bad, headers=JSON)).status_code for _ in range(2)]
            assert statuses == [400, 400]
            assert await running.quarantined() == 2

    async def test_a_duplicate_found_by_the_store_is_remembered(self, tmp_path: Path) -> None:
        async with start(tmp_path) as running:
            body = order_body()
            first = await running.client.post(ORDERS, content=body, headers=JSON)
            running.receiver.recent = RecentBodies(16)  # forget: the next answer comes from the store
            second = await running.client.post(ORDERS, content=body, headers=JSON)
            assert second.status_code == 200
            await running.service.inbox.close()
            third = await running.client.post(ORDERS, content=body, headers=JSON)
            assert third.json() == {"status": "duplicate", "eventId": first.json()["eventId"]}

    async def test_zero_turns_it_off(self, tmp_path: Path) -> None:
        async with start(tmp_path, server=ServerSettings(max_body_bytes=4096, request_timeout=0.5,
                                                         recent_bodies=0)) as running:
            body = order_body()
            await stored_then_store_closed(running, body)
            again = await running.client.post(ORDERS, content=body, headers=JSON)
            assert again.status_code == 503

    async def test_ttl_stays_under_the_store_retention(self, tmp_path: Path) -> None:
        async with start(tmp_path, store=StoreSettings(busy_timeout=0.3, retention=60)) as running:
            assert running.receiver.recent.ttl == 30
        async with start(tmp_path) as running:
            assert running.receiver.recent.ttl == MAX_TTL


class TestRecentBodies:
    def test_entries_expire(self) -> None:
        recent = RecentBodies(8, retention=0.1)
        key = recent.digest("orders", "application/json", None, b"{}")
        recent.put(key, "e1", 1, "order", "OrderIssuedByBuyer")
        assert recent.get(key) is not None
        time.sleep(0.06)
        assert recent.get(key) is None
        assert len(recent) == 0

    def test_oldest_entries_leave_first(self) -> None:
        recent = RecentBodies(2)
        keys = [recent.digest("orders", "application/json", None, bytes([i])) for i in range(3)]
        for i, key in enumerate(keys):
            recent.put(key, f"e{i}", i, "order", "x")
        assert [recent.get(k) is not None for k in keys] == [False, True, True]

    def test_the_digest_separates_route_and_headers(self) -> None:
        digest = RecentBodies.digest
        base = digest("orders", "application/json", None, b"{}")
        others = {
            digest("shipments", "application/json", None, b"{}"),
            digest("orders", "application/xml", None, b"{}"),
            digest("orders", "application/json", "gzip", b"{}"),
            digest("orders", "application/json", None, b"{} "),
        }
        assert len(others | {base}) == 5
