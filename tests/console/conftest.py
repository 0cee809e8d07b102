"""An inbox with events in every state, and the console app on it (in-process ASGI)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from tcwebhook.config import Settings
from tcwebhook.console.app import ConsoleHooks, build_app
from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox.base import AttemptOutcome, AttemptResult, DeliveryStatus, NewEvent
from tcwebhook.inbox.sqlite import SqliteInbox

OPERATOR = ("olga", "operator-password-1")
VIEWER = ("victor", "viewer-password-1")
BASE = "https://console.test"


def order_event(n: int, po: str, *, name: str = "OrderIssuedByBuyer") -> NewEvent:
    body = orjson.dumps(
        {
            "eventName": name,
            "orderEvent": {"orderId": f"order-{n}", "buyerOrder": {"purchaseOrderNumber": po}, "lines": []},
            "meta": {"messageId": f"00000000-0000-4000-8000-{n:012d}"},
        }
    )
    return NewEvent(
        kind=EventKind.ORDER,
        event_name=name,
        dedupe_key=f"00000000-0000-4000-8000-{n:012d}",
        content_type="application/json",
        body=body,
        key=f"order:order-{n}",
        order_id=f"order-{n}",
        purchase_order_number=po,
        message_id=f"00000000-0000-4000-8000-{n:012d}",
        headers={"content-type": "application/json", "authorization": "[redacted]"},
    )


def console_settings(tmp_path: Path, **console: object) -> Settings:
    return Settings(
        data_dir=tmp_path,
        sinks=[{"name": "erp", "type": "files", "directory": str(tmp_path / "out")}],
        console={
            "enabled": True,
            "users": [
                {"username": OPERATOR[0], "password": OPERATOR[1], "role": "operator"},
                {"username": VIEWER[0], "password": VIEWER[1], "role": "viewer"},
            ],
            **console,
        },
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Seeded:
    inbox: SqliteInbox
    delivered_id: str
    dead_id: str
    pending_id: str
    quarantine_id: str
    requeued: list[int]


async def seed(inbox: SqliteInbox) -> Seeded:
    ids = []
    for n, po in ((1, "PO-100"), (2, "PO-200"), (3, "PO-300")):
        ids.append((await inbox.store(order_event(n, po))).event_id)
    now = time.time()
    claims = await inbox.claim_due(owner="t", sinks=["erp"], limit=10, lease=30, stale_kinds=frozenset())
    by_id = {c.event.event_id: c for c in claims}
    await inbox.finish(
        by_id[ids[0]], AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, now, 0.01)
    )
    await inbox.finish(
        by_id[ids[1]],
        AttemptResult(DeliveryStatus.DEAD, AttemptOutcome.PERMANENT, now, 0.02, "PermanentError: ERP said 422"),
    )
    await inbox.finish(
        by_id[ids[2]],
        AttemptResult(DeliveryStatus.PENDING, AttemptOutcome.TRANSIENT, now, 0.03, "ConnectError: refused", now + 3600),
    )
    qid = await inbox.quarantine(
        route="orders", content_type="application/json", body=b'{"nope": 1}', headers={}, reason="no eventName",
        status_code=400,
    )
    return Seeded(inbox, ids[0], ids[1], ids[2], qid, [])


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[Seeded]:
    settings = console_settings(tmp_path)
    inbox = SqliteInbox(tmp_path / "inbox.db", settings.store, sinks=["erp"])
    await inbox.open()
    try:
        yield await seed(inbox)
    finally:
        await inbox.close()


@pytest.fixture
async def client_factory(tmp_path: Path, seeded: Seeded) -> AsyncIterator[ClientFactory]:
    settings = console_settings(tmp_path)
    expiry = datetime.now(UTC) + timedelta(days=40)
    app = build_app(
        settings,
        seeded.inbox,
        ConsoleHooks(certificate_expiry=lambda: expiry, on_requeued=lambda: seeded.requeued.append(1)),
    )
    factory = ClientFactory(app)
    yield factory
    for client in factory.clients:
        await client.aclose()


class ClientFactory:
    def __init__(self, app: object) -> None:
        self.app = app
        self.clients: list[httpx.AsyncClient] = []

    def new(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("192.0.2.7", 50000)),  # type: ignore[arg-type]
            base_url=BASE,
            follow_redirects=False,
        )
        self.clients.append(client)
        return client

    async def logged_in(self, who: tuple[str, str]) -> tuple[httpx.AsyncClient, str]:
        """A client with a session, and the session's CSRF token."""
        client = self.new()
        r = await login(client, *who)
        assert r.status_code == 303, r.text
        page = await client.get("/events")
        return client, csrf_of(page.text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    form = await client.get("/login")
    return await client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf_of(form.text)}
    )
