"""The receiver's status table in-process: ``Receiver`` driven through ``httpx.ASGITransport``.

The same rules are checked end to end over real TLS in ``test_endpoints.py``; here each status
is provoked by the request alone, with a real SQLite inbox under a temporary directory, and
what the store holds afterwards is read back from it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tcwebhook.config import (
    AuthSettings,
    BasicCredential,
    DeliverySettings,
    PythonSinkSettings,
    ServerSettings,
    Settings,
    StoreSettings,
)
from tcwebhook.errors import PermanentError, TransientError
from tcwebhook.inbox.base import EventFilter, NewEvent, StoreResult
from tcwebhook.receiver.app import Receiver
from tcwebhook.service import Service
from tcwebhook.sinks.event import Event

TOKEN = "status-token-0123456789abcdef"
USER, PASSWORD = "tradecloud", "status-password-0123456789"
BEARER = {"authorization": f"Bearer {TOKEN}"}
JSON = {**BEARER, "content-type": "application/json"}
ORDERS = "http://receiver/tradecloud/orders"

pytestmark = pytest.mark.anyio


def order_body() -> bytes:
    return json.dumps(
        {
            "eventName": "OrderIssuedByBuyer",
            "orderEvent": {
                "orderId": f"order-{uuid.uuid4()}",
                "buyerOrder": {"purchaseOrderNumber": "PO-1", "companyId": str(uuid.uuid4())},
                "lines": [{"id": "l1", "buyerLine": {"position": "0001"}}],
            },
            "meta": {"messageId": str(uuid.uuid4())},
        }
    ).encode()


def settings(tmp_path: Path, **sections: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "auth": AuthSettings(
            bearer_tokens=(SecretStr(TOKEN),),
            basic=(BasicCredential(username=USER, password=SecretStr(PASSWORD)),),
            failure_limit=3,
        ),
        "server": ServerSettings(max_body_bytes=4096, request_timeout=0.5),
        "store": StoreSettings(busy_timeout=0.3),
    }
    values.update(sections)
    return Settings(**values)


class Running:
    """A receiver of an opened service, and a client that calls it in-process."""

    def __init__(self, service: Service, receiver: Receiver, client: httpx.AsyncClient) -> None:
        self.service, self.receiver, self.client = service, receiver, client

    async def bodies(self) -> list[bytes]:
        return [e.body for e in await self.service.inbox.list_events(EventFilter(limit=100))]

    async def quarantined(self) -> int:
        return len(await self.service.inbox.list_quarantined(limit=100))


@contextlib.asynccontextmanager
async def start(tmp_path: Path, **sections: Any) -> AsyncIterator[Running]:
    async with Service(settings(tmp_path, **sections)) as service:
        receiver = service.receiver()
        transport = httpx.ASGITransport(app=receiver, client=("192.0.2.7", 40000))
        async with httpx.AsyncClient(transport=transport, timeout=10) as client:
            yield Running(service, receiver, client)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with start(tmp_path) as running:
        yield running


class TestStored:
    """2xx only once the event is in the store: 202 new, 200 duplicate."""

    async def test_new_event_202_and_on_disk(self, running: Running) -> None:
        body = order_body()
        r = await running.client.post(ORDERS, content=body, headers=JSON)
        assert r.status_code == 202
        assert r.json()["status"] == "stored"
        assert r.headers["cache-control"] == "no-store"
        stored = await running.service.inbox.get_event(r.json()["eventId"])
        assert stored.body == body

    async def test_basic_credentials_accepted(self, running: Running) -> None:
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        r = await running.client.post(ORDERS, content=order_body(), headers={"authorization": basic,
                                                                             "content-type": "application/json"})
        assert r.status_code == 202

    async def test_duplicate_200_stored_once(self, running: Running) -> None:
        body = order_body()
        first = await running.client.post(ORDERS, content=body, headers=JSON)
        again = await running.client.post(ORDERS, content=body, headers=JSON)
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.json() == {"status": "duplicate", "eventId": first.json()["eventId"]}
        assert (await running.bodies()).count(body) == 1


class TestRefused:
    """4xx for requests that can never succeed, nothing stored but the quarantine entry."""

    async def test_invalid_body_400_quarantined(self, running: Running) -> None:
        r = await running.client.post(ORDERS, content=b'{"no": "eventName"}', headers=JSON)
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_body"
        assert await running.bodies() == []
        assert await running.quarantined() == 1

    async def test_trigger_without_id_400(self, running: Running) -> None:
        r = await running.client.get(ORDERS, headers=BEARER)
        assert r.status_code == 400
        assert "orderId" in r.json()["detail"]
        assert await running.bodies() == []

    @pytest.mark.parametrize(
        "headers",
        [{}, {"authorization": "Bearer wrong-token-0123456789"}, {"authorization": "Basic " + "eDp5"}],
        ids=["none", "wrong-bearer", "wrong-basic"],
    )
    async def test_bad_credentials_401_with_challenge(self, running: Running, headers: dict[str, str]) -> None:
        r = await running.client.post(ORDERS, content=order_body(), headers={**headers,
                                                                             "content-type": "application/json"})
        assert r.status_code == 401
        assert r.headers.get_list("www-authenticate")
        assert await running.bodies() == []
        assert await running.quarantined() == 0

    async def test_declared_too_large_413(self, running: Running) -> None:
        r = await running.client.post(ORDERS, content=b"x" * 5000, headers=JSON)
        assert r.status_code == 413
        assert r.json()["error"] == "too_large"
        assert await running.bodies() == []

    async def test_streamed_too_large_413(self, running: Running) -> None:
        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit is counted
            for _ in range(5):
                yield b"x" * 1000

        r = await running.client.post(ORDERS, content=chunks(), headers=JSON)
        assert r.status_code == 413
        assert await running.bodies() == []

    async def test_unsupported_media_type_415(self, running: Running) -> None:
        r = await running.client.post(ORDERS, content=b"eventName=x", headers={**BEARER, "content-type": "text/plain"})
        assert r.status_code == 415
        assert r.json()["error"] == "unsupported_media_type"
        assert await running.bodies() == []

    async def test_unsupported_coding_415_names_the_codings(self, running: Running) -> None:
        r = await running.client.post(ORDERS, content=order_body(), headers={**JSON, "content-encoding": "br"})
        assert r.status_code == 415
        assert "gzip" in r.headers["accept-encoding"]

    async def test_repeated_failures_429_with_retry_after(self, running: Running) -> None:
        wrong = {"authorization": "Bearer wrong-token-0123456789", "content-type": "application/json"}
        statuses = [(await running.client.post(ORDERS, content=order_body(), headers=wrong)).status_code
                    for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        limited = await running.client.post(ORDERS, content=order_body(), headers=wrong)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        good = await running.client.post(ORDERS, content=order_body(), headers=JSON)
        assert good.status_code == 202  # only failed attempts are limited: the sender is not locked out

    async def test_method_405_with_allow(self, running: Running) -> None:
        r = await running.client.delete(ORDERS, headers=BEARER)
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, POST"


class TestTransient:
    """503 with Retry-After whenever the event is not safely stored (Tradecloud retries)."""

    async def test_locked_store_503_then_stored(self, running: Running, tmp_path: Path) -> None:
        body = order_body()
        holder = sqlite3.connect(tmp_path / "data" / "inbox.db", timeout=5, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            r = await running.client.post(ORDERS, content=body, headers=JSON)
            assert r.status_code == 503
            assert r.headers["retry-after"] == "5"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert await running.bodies() == []
        again = await running.client.post(ORDERS, content=body, headers=JSON)
        assert again.status_code == 202
        assert await running.bodies() == [body]

    async def test_slow_body_503(self, running: Running) -> None:
        async def stalls() -> AsyncIterator[bytes]:
            yield b'{"eventName":'
            await asyncio.sleep(2)  # beyond request_timeout = 0.5
            yield b'"OrderIssuedByBuyer"}'

        r = await running.client.post(ORDERS, content=stalls(), headers=JSON)
        assert r.status_code == 503
        assert r.json()["error"] == "timeout"
        assert await running.bodies() == []

    async def test_unforeseen_error_503_not_500(self, running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
        async def broken(event: NewEvent) -> StoreResult:
            raise RuntimeError("a bug in the store")

        monkeypatch.setattr(running.receiver.inbox, "store", broken)
        r = await running.client.post(ORDERS, content=order_body(), headers=JSON)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"


# The ERP of the synchronous-delivery tests: the next answer each call gives.
ERP_ANSWERS: list[str] = []


def erp(event: Event) -> None:
    answer = ERP_ANSWERS.pop(0)
    if answer == "reject":
        raise PermanentError("ERP refused the order (table PO_HEAD)")
    if answer == "down":
        raise TransientError("erp-db.internal:1521 refused the connection")


SYNC = {
    "delivery": DeliverySettings(mode="sync", max_attempts=1),
    "sinks": (PythonSinkSettings(name="erp", callable=f"{__name__}:erp"),),
}


class TestSynchronousDelivery:
    """``[delivery] mode = "sync"``: the ERP's answer becomes the status, its words stay inside."""

    @pytest.mark.parametrize(
        ("answer", "status", "error"),
        [("ok", 200, None), ("reject", 400, "rejected_by_erp"), ("down", 503, "erp_unavailable")],
    )
    async def test_erp_answer(self, tmp_path: Path, answer: str, status: int, error: str | None) -> None:
        ERP_ANSWERS[:] = [answer]
        body = order_body()
        async with start(tmp_path, **SYNC) as running:
            r = await running.client.post(ORDERS, content=body, headers=JSON)
            assert r.status_code == status
            assert r.json().get("error") == error
            assert "PO_HEAD" not in r.text and "erp-db" not in r.text
            assert ERP_ANSWERS == []
            assert await running.bodies() == [body]  # stored before the ERP was asked, whatever it said
