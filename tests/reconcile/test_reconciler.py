"""``Reconciler`` against the fake Tradecloud API (HTTPS on loopback) and a real SQLite inbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from tests.tradecloud_api.fake_api import PASSWORD, USERNAME, FakeServer, FakeTradecloud

from tcwebhook.backoff import Backoff
from tcwebhook.config import ConnectSettings, ReconcileSettings, Settings, StoreSettings, TradecloudSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.inbox import EventFilter, NewEvent, SqliteInbox
from tcwebhook.reconcile import BackgroundReconciler, Reconciler
from tcwebhook.reconcile.reconciler import HIGH_WATER
from tcwebhook.tradecloud_api.client import TradecloudClient

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServer]:
    server = FakeServer(tmp_path_factory.mktemp("fake-tradecloud"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_server: FakeServer) -> FakeTradecloud:
    fake_server.fake.reset()
    return fake_server.fake


def settings(fake_server: FakeServer, **reconcile: Any) -> Settings:
    tc = TradecloudSettings(
        api_base=fake_server.api_base,
        username=USERNAME,
        password=SecretStr(PASSWORD),
        ca_bundle=fake_server.ca_path,
        timeout=2.0,
        max_retries=2,
    )
    values: dict[str, Any] = {"grace": 0, "page_size": 2, **reconcile}
    return Settings(tradecloud=tc, reconcile=ReconcileSettings(**values), connect=ConnectSettings())


@pytest.fixture
async def inbox(tmp_path: Path) -> AsyncIterator[SqliteInbox]:
    store = SqliteInbox(tmp_path / "inbox.db", StoreSettings())
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def client(fake_server: FakeServer, fake: FakeTradecloud) -> AsyncIterator[TradecloudClient]:
    fast = Backoff(initial=0.01, multiplier=2.0, cap=0.02, jitter=0.0)
    async with TradecloudClient(settings(fake_server).tradecloud, backoff=fast) as api:
        yield api


def order(n: int) -> dict[str, Any]:
    return {"id": f"ord-{n}", "buyerOrder": {"purchaseOrderNumber": f"PO-{n}"}, "lines": [{"id": "l1"}]}


def shipment(n: int) -> dict[str, Any]:
    return {"id": f"shp-{n}", "supplierShipment": {"shipmentNumber": f"SN-{n}"}, "lines": []}


async def receive(inbox: SqliteInbox, route: str, body: dict[str, Any]) -> None:
    """Store a webhook the way the receiver does."""
    raw = orjson.dumps(body)
    parsed = parse_webhook(route, raw, "application/json")  # type: ignore[arg-type]
    await inbox.store(NewEvent.from_parsed(parsed, content_type="application/json", body=raw, headers={}))


async def settle() -> None:
    """The fake's timestamps stay strictly increasing and may run a few milliseconds ahead."""
    await asyncio.sleep(0.05)


async def scenario(fake: FakeTradecloud, inbox: SqliteInbox) -> None:
    """ord-1, ord-2, shp-1 delivered; ord-3 delivered then changed (lost); ord-4, ord-5, shp-2 lost."""
    for n in (1, 2, 3):
        await receive(inbox, "orders", fake.order_webhook(fake.update_order(order(n))))
    fake.update_order(order(3), buyerOrder={"purchaseOrderNumber": "PO-3", "description": "changed"})
    fake.update_order(order(4))
    fake.update_order(order(5))
    await receive(inbox, "shipments", fake.shipment_webhook(fake.update_shipment(shipment(1))))
    fake.update_shipment(shipment(2))
    await settle()


class TestGaps:
    """Missing and stale objects are found, over several pages, and repaired by fetch."""

    async def test_report_then_fetch_then_nothing(
        self, fake_server: FakeServer, fake: FakeTradecloud, inbox: SqliteInbox, client: TradecloudClient
    ) -> None:
        await scenario(fake, inbox)
        reconciler = Reconciler(settings(fake_server), inbox, client)
        report = await reconciler.run(action="report", since=3600)
        assert report.complete and report.checked == {"order": 5, "shipment": 2}
        found = {(g.noun, g.object_id, g.reason) for g in report.gaps}
        assert found == {
            ("order", "ord-3", "stale"),
            ("order", "ord-4", "missing"),
            ("order", "ord-5", "missing"),
            ("shipment", "shp-2", "missing"),
        }
        stale = next(g for g in report.gaps if g.reason == "stale")
        assert stale.stored_updated_at is not None and stale.stored_updated_at < str(stale.tradecloud_updated_at)
        assert len(fake.calls_to("/v2/order-search/poll")) == 3  # pages of 2

        fetched = await reconciler.run(action="fetch", since=3600)
        assert {g.outcome for g in fetched.gaps} == {"fetched"}
        stored = await inbox.list_events(EventFilter(reconciled=True))
        assert len(stored) == 4
        assert {e.kind for e in stored} == {EventKind.ORDER_FETCH, EventKind.SHIPMENT_FETCH}
        ord3 = next(e for e in stored if e.order_id == "ord-3")
        assert orjson.loads(ord3.body) == fake.orders["ord-3"] and ord3.key == "order:ord-3"
        assert ord3.purchase_order_number == "PO-3"
        assert len(await inbox.list_events(EventFilter(reconciled=False))) == 4

        again = await reconciler.run(action="fetch", since=3600)
        assert again.complete and again.gaps == []

    async def test_same_time_higher_version_is_stale(
        self, fake_server: FakeServer, fake: FakeTradecloud, inbox: SqliteInbox, client: TradecloudClient
    ) -> None:
        current = fake.update_order(order(7))
        body = fake.order_webhook({**current, "version": current["version"] - 1})
        await receive(inbox, "orders", body)
        await settle()
        reconciler = Reconciler(settings(fake_server), inbox, client)
        report = await reconciler.run(action="report", since=3600, shipments=False)
        assert [(g.reason, g.stored_version, g.tradecloud_version) for g in report.gaps] == [("stale", 0, 1)]

    async def test_resend_asks_tradecloud(
        self, fake_server: FakeServer, fake: FakeTradecloud, inbox: SqliteInbox, client: TradecloudClient
    ) -> None:
        await scenario(fake, inbox)
        report = await Reconciler(settings(fake_server), inbox, client).run(action="resend", since=3600)
        assert {g.outcome for g in report.gaps} == {"resent"}
        assert {c.path for c in fake.calls_to("/v2/order/", "POST")} == {
            "/v2/order/ord-3/buyer/resend",
            "/v2/order/ord-4/buyer/resend",
            "/v2/order/ord-5/buyer/resend",
        }
        assert [c.path for c in fake.calls_to("/v2/shipment/shp-2/resend")] == ["/v2/shipment/shp-2/resend"]

    async def test_a_change_within_grace_waits(
        self, fake_server: FakeServer, fake: FakeTradecloud, inbox: SqliteInbox, client: TradecloudClient
    ) -> None:
        fake.update_order(order(9))
        report = await Reconciler(settings(fake_server, grace=600), inbox, client).run(action="report", since=3600)
        assert report.gaps == [] and report.checked["order"] == 1

    async def test_single_delivery_mode_polls_its_variant(
        self, fake_server: FakeServer, fake: FakeTradecloud, inbox: SqliteInbox, client: TradecloudClient
    ) -> None:
        s = settings(fake_server).model_copy(update={"connect": ConnectSettings(single_delivery=True)})
        await Reconciler(s, inbox, client).run(action="report", since=60, shipments=False)
        assert [c.path for c in fake.calls_to("/v2/order-search/")] == ["/v2/order-search/poll/single-delivery"]


class TestHighWaterMark:
    """Runs resume from the stored mark; API trouble keeps the old mark."""

    async def test_outage_keeps_the_mark_and_the_next_run_covers_it(
        self, fake_server: FakeServer, fake: FakeTradecloud, inbox: SqliteInbox, client: TradecloudClient
    ) -> None:
        reconciler = Reconciler(settings(fake_server), inbox, client)
        first = await reconciler.run(action="report")
        assert first.complete
        mark = await inbox.get_state(HIGH_WATER.format(noun="order"))
        assert mark is not None and mark == first.high_water["order"]
        await asyncio.sleep(0.01)
        lost = fake.update_order(order(1))
        await settle()
        fake.fail("/v2/order-search/poll", 429, times=10, **{"Retry-After": "0"})
        failed = await reconciler.run(action="fetch", shipments=False)
        assert not failed.complete and "HTTP 429" in failed.errors[0]
        assert await inbox.get_state(HIGH_WATER.format(noun="order")) == mark
        fake.reset_failures()
        recovered = await reconciler.run(action="fetch", shipments=False)
        assert recovered.complete and [g.object_id for g in recovered.gaps] == ["ord-1"]
        assert recovered.gaps[0].tradecloud_updated_at == lost["lastUpdatedAt"]
        new_mark = await inbox.get_state(HIGH_WATER.format(noun="order"))
        assert new_mark is not None and new_mark > mark
        poll = fake.calls_to("/v2/order-search/poll")[-1]
        assert poll.status == 200

    async def test_mark_stays_before_a_gap_that_is_only_reported(
        self, fake_server: FakeServer, fake: FakeTradecloud, inbox: SqliteInbox, client: TradecloudClient
    ) -> None:
        lost = fake.update_order(order(2))
        await settle()
        reconciler = Reconciler(settings(fake_server), inbox, client)
        reported = await reconciler.run(action="report", shipments=False)
        assert [g.object_id for g in reported.gaps] == ["ord-2"]
        assert reported.high_water["order"] < lost["lastUpdatedAt"]
        resent = await reconciler.run(action="resend", shipments=False)  # looked at again
        assert [g.outcome for g in resent.gaps] == ["resent"]
        fetched = await reconciler.run(action="fetch", shipments=False)  # the resend never arrived
        assert [g.outcome for g in fetched.gaps] == ["fetched"]
        assert fetched.high_water["order"] > lost["lastUpdatedAt"]
        assert (await reconciler.run(action="report", shipments=False)).gaps == []

    async def test_background_runs_once_per_store(
        self, fake_server: FakeServer, fake: FakeTradecloud, inbox: SqliteInbox, client: TradecloudClient
    ) -> None:
        s = settings(fake_server, interval=60)
        first = BackgroundReconciler(s, inbox, client, owner="a")
        second = BackgroundReconciler(s, inbox, client, owner="b")
        fake.update_order(order(1))
        await settle()
        report = await first.run_once()
        assert report is not None and len(report.gaps) == 1
        assert await second.run_once() is None  # the lease is held by "a"
        assert first.metrics.gaps.labels("order", "missing", "fetched")._value.get() == 1
        await first.stop()  # releases the lease
        assert await second.run_once() is not None
