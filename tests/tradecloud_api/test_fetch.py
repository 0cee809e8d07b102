"""GET-webhook triggers resolved into full objects, with coalescing and error mapping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tcwebhook.config import TradecloudSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import PermanentError, TransientError
from tcwebhook.tradecloud_api import FetchResolver, TradecloudClient, fetch_target, plan_fetches

from .conftest import FAST, make_event
from .fake_api import FakeTradecloud

pytestmark = pytest.mark.anyio

ORDER = {
    "id": "ord-1",
    "buyerOrder": {"purchaseOrderNumber": "PO-77"},
    "lines": [{"id": "l1"}, {"id": "l2"}],
    "meta": {"lastUpdatedAt": "2025-04-23T10:01:53.812Z"},
}
SHIPMENT = {
    "id": "c0ffee00-0000-4000-8000-000000000001-SN42",
    "supplierShipment": {"shipmentNumber": "SN42"},
    "lines": [],
    "meta": {"lastUpdatedAt": "2025-05-01T08:00:00.000Z"},
}


class TestResolve:
    """A trigger becomes an event carrying the whole current object."""

    async def test_order_trigger(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        fake_api.add_order(ORDER)
        trigger = make_event(EventKind.ORDER_FETCH, {"orderId": "ord-1"}, event_name="OrderFetch")
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            resolved = await FetchResolver(tc).resolve(trigger)
        assert orjson.loads(resolved.body) == ORDER
        assert resolved.event_name == "OrderFetch"
        assert (resolved.event_id, resolved.seq, resolved.kind) == (trigger.event_id, 1, EventKind.ORDER_FETCH)
        assert (resolved.order_id, resolved.purchase_order_number) == ("ord-1", "PO-77")
        assert resolved.last_updated_at == "2025-04-23T10:01:53.812Z"
        assert resolved.content_type == "application/json"

    async def test_shipment_trigger(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        fake_api.add_shipment(SHIPMENT)
        trigger = make_event(EventKind.SHIPMENT_FETCH, {"shipmentId": SHIPMENT["id"]})
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            resolved = await FetchResolver(tc).resolve(trigger)
        assert orjson.loads(resolved.body) == SHIPMENT
        assert (resolved.shipment_id, resolved.shipment_number) == (SHIPMENT["id"], "SN42")

    async def test_404_dead_letters_with_the_reason(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            with pytest.raises(PermanentError, match=r"order ord-9: .*not found \(HTTP 404\)"):
                await FetchResolver(tc).resolve(make_event(EventKind.ORDER_FETCH, {"orderId": "ord-9"}))

    async def test_outage_is_transient_then_recovers(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        fake_api.fail("/v2/order/", 503, times=6)  # more than one attempt's 4 tries
        trigger = make_event(EventKind.ORDER_FETCH, {"orderId": "ord-1"})
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            resolver = FetchResolver(tc)
            with pytest.raises(TransientError, match="HTTP 503"):
                await resolver.resolve(trigger)
            resolved = await resolver.resolve(trigger)  # the dispatcher's next attempt
        assert orjson.loads(resolved.body) == ORDER

    @pytest.mark.parametrize(
        ("kind", "body", "reason"),
        [
            (EventKind.ORDER_FETCH, {"legacyOrderId": "123"}, "legacy"),
            (EventKind.ORDER_FETCH, {}, "no usable id"),
            (EventKind.SHIPMENT_FETCH, b"not json", "no usable id"),
            (EventKind.SHIPMENT_FETCH, {"shipmentId": 7}, "no usable id"),
        ],
    )
    def test_trigger_without_usable_id(self, kind: EventKind, body: dict[str, object] | bytes, reason: str) -> None:
        with pytest.raises(PermanentError, match=reason):
            fetch_target(make_event(kind, body))

    def test_id_from_the_stored_columns(self) -> None:
        event = make_event(EventKind.SHIPMENT_FETCH, b"", shipment_id="s-1")
        assert fetch_target(event).key == "shipment:s-1"


class TestCoalescing:
    """Triggers pending for the same id share one fetch."""

    async def test_pending_triggers_share_one_fetch(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        past = datetime.now(UTC) - timedelta(seconds=5)
        triggers = [
            make_event(EventKind.ORDER_FETCH, {"orderId": "ord-1"}, seq=i, received_at=past) for i in range(1, 4)
        ]
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            resolver = FetchResolver(tc)
            for trigger in triggers:  # one after the other, as per-key FIFO delivers them
                assert orjson.loads((await resolver.resolve(trigger)).body) == ORDER
        assert len(fake_api.calls_to("/v2/order/")) == 1

    async def test_concurrent_triggers_share_the_fetch_in_flight(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        gate = fake_api.hold("/v2/order/")
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            await tc.ping()
            resolver = FetchResolver(tc)
            tasks = [
                asyncio.create_task(resolver.resolve(make_event(EventKind.ORDER_FETCH, {"orderId": "ord-1"}, seq=i)))
                for i in range(5)
            ]
            await asyncio.sleep(0)  # one loop turn: each task reaches the coalescer and waits
            assert resolver.coalescer.shared == 4
            gate.set()
            results = await asyncio.gather(*tasks)
        assert {orjson.loads(r.body)["id"] for r in results} == {"ord-1"}
        assert len(fake_api.calls_to("/v2/order/")) == 1
        assert resolver.coalescer.fetches == 1 and resolver.coalescer.shared == 4

    async def test_trigger_after_the_fetch_started_fetches_again(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            resolver = FetchResolver(tc)
            await resolver.resolve(make_event(EventKind.ORDER_FETCH, {"orderId": "ord-1"}, seq=1))
            fake_api.add_order({**ORDER, "lines": [{"id": "l1"}]})
            later = make_event(
                EventKind.ORDER_FETCH,
                {"orderId": "ord-1"},
                seq=2,
                received_at=datetime.now(UTC) + timedelta(milliseconds=1),
            )
            newer = await resolver.resolve(later)
        assert orjson.loads(newer.body)["lines"] == [{"id": "l1"}]
        assert len(fake_api.calls_to("/v2/order/")) == 2

    async def test_failed_fetch_is_not_reused(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        fake_api.add_order(ORDER)
        fake_api.fail("/v2/order/", 503, times=4)
        past = datetime.now(UTC) - timedelta(seconds=5)
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            resolver = FetchResolver(tc)
            with pytest.raises(TransientError):
                await resolver.resolve(make_event(EventKind.ORDER_FETCH, {"orderId": "ord-1"}, received_at=past))
            await resolver.resolve(make_event(EventKind.ORDER_FETCH, {"orderId": "ord-1"}, received_at=past))

    def test_plan_keeps_the_newest_trigger_per_object(self) -> None:
        events = [
            make_event(EventKind.ORDER_FETCH, {"orderId": "a"}, seq=1),
            make_event(EventKind.SHIPMENT_FETCH, {"shipmentId": "a"}, seq=2),
            make_event(EventKind.ORDER, {"orderEvent": {}}, seq=3),
            make_event(EventKind.ORDER_FETCH, {"orderId": "a"}, seq=4),
            make_event(EventKind.ORDER_FETCH, {}, seq=5),
            make_event(EventKind.ORDER_FETCH, {"orderId": "a"}, seq=6),
        ]
        plan = plan_fetches(events)
        assert [e.seq for e in plan.fetch] == [2, 3, 5, 6]
        assert plan.superseded == {"evt-0001": "evt-0006", "evt-0004": "evt-0006"}
