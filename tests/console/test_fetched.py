"""A GET trigger's object, fetched from the (fake, HTTPS loopback) Tradecloud API for the event page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from tests.tradecloud_api.fake_api import PASSWORD, USERNAME, FakeServer

from tcwebhook.config import TradecloudSettings
from tcwebhook.console.app import ConsoleHooks, build_app
from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox.base import NewEvent
from tcwebhook.inbox.sqlite import SqliteInbox
from tcwebhook.tradecloud_api.client import TradecloudClient
from tcwebhook.tradecloud_api.fetch import FetchResolver

from .conftest import BASE, VIEWER, console_settings, csrf_of, login

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServer]:
    server = FakeServer(tmp_path_factory.mktemp("fake-tradecloud"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def trigger(order_id: str) -> NewEvent:
    return NewEvent(
        kind=EventKind.ORDER_FETCH,
        event_name="OrderFetch",
        dedupe_key=f"fetch:{order_id}",
        content_type="application/json",
        body=b'{"orderId":"' + order_id.encode() + b'"}',
        key=f"order:{order_id}",
        order_id=order_id,
    )


@pytest.fixture
async def client(tmp_path: Path, fake_server: FakeServer) -> AsyncIterator[tuple[httpx.AsyncClient, SqliteInbox]]:
    fake_server.fake.reset()
    settings = console_settings(tmp_path)
    inbox = SqliteInbox(tmp_path / "inbox.db", settings.store, sinks=["erp"])
    await inbox.open()
    api = TradecloudClient(
        TradecloudSettings(
            api_base=fake_server.api_base,
            username=USERNAME,
            password=SecretStr(PASSWORD),
            ca_bundle=fake_server.ca_path,
            timeout=2.0,
            max_retries=0,
        )
    )
    hooks = ConsoleHooks(certificate_expiry=lambda: datetime.now(UTC), fetch_object=FetchResolver(api).fetch)
    app = build_app(settings, inbox, hooks)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)  # type: ignore[arg-type]
    try:
        r = await login(http, *VIEWER)
        assert r.status_code == 303
        yield http, inbox
    finally:
        await http.aclose()
        await api.aclose()
        await inbox.close()


class TestFetchedObject:
    """The event page of a GET trigger links to the object as the API has it now."""

    async def test_fetched(self, client: tuple[httpx.AsyncClient, SqliteInbox], fake_server: FakeServer) -> None:
        http, inbox = client
        fake_server.fake.add_order(
            {"id": "o-fetch-1", "buyerOrder": {"purchaseOrderNumber": "PO-FETCHED-7"}, "lines": []}
        )
        stored = await inbox.store(trigger("o-fetch-1"))
        page = await http.get(f"/events/{stored.event_id}")
        assert f"/events/{stored.event_id}/fetched" in page.text
        fetched = await http.get(f"/events/{stored.event_id}/fetched")
        assert fetched.status_code == 200
        assert "PO-FETCHED-7" in fetched.text
        assert csrf_of(fetched.text)  # a normal page: the logout form is there

    async def test_unknown_order(self, client: tuple[httpx.AsyncClient, SqliteInbox]) -> None:
        http, inbox = client
        stored = await inbox.store(trigger("o-missing"))
        fetched = await http.get(f"/events/{stored.event_id}/fetched")
        assert fetched.status_code == 502
        assert "o-missing" in fetched.text
