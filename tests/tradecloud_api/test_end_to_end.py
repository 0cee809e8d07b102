"""GET triggers, enrichment and documents through the real inbox, dispatcher and files sink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.polling import eventually_async

from tcwebhook.config import DeliverySettings, FilesSinkSettings, Settings, TradecloudSettings
from tcwebhook.contract.kinds import EventKind, routing_key
from tcwebhook.inbox import Inbox, NewEvent
from tcwebhook.service import Service

from .fake_api import FakeTradecloud

pytestmark = pytest.mark.anyio

ORDER = {"id": "ord-1", "buyerOrder": {"purchaseOrderNumber": "PO-1"}, "lines": [{"id": "l1"}, {"id": "l2"}]}
SHIPMENT = {"id": "sup-SN9", "supplierShipment": {"shipmentNumber": "SN9"}, "lines": []}
OBJ = "7d1c2b9e-4f5a-4e0b-8c3d-112233445566"
DELIVERY = DeliverySettings(
    poll_interval=0.05, initial_delay=0.02, max_delay=0.1, jitter=0.0, max_attempts=10, shutdown_timeout=2
)


def new_event(
    i: int, kind: EventKind, body: dict[str, Any], *, order_id: str | None = None, shipment_id: str | None = None
) -> NewEvent:
    return NewEvent(
        kind=kind,
        event_name={
            EventKind.ORDER_FETCH: "OrderFetch",
            EventKind.SHIPMENT_FETCH: "ShipmentFetch",
            EventKind.ORDER: "OrderLinesAcceptedBySupplier",
            EventKind.ORDER_DOCUMENTS: "OrderDocumentsAttachedBySupplier",
        }.get(kind, "Event"),
        dedupe_key=f"msg-{i}",
        content_type="application/json",
        body=orjson.dumps(body),
        key=routing_key(kind, order_id=order_id, shipment_id=shipment_id),
        order_id=order_id,
        shipment_id=shipment_id,
    )


@asynccontextmanager
async def running(
    tmp_path: Path, tc: TradecloudSettings, events: Sequence[NewEvent], **sink_options: Any
) -> AsyncIterator[tuple[Inbox, list[str]]]:
    """Store ``events``, deliver them through the service's wrapped files sink, stop on exit."""
    sink = FilesSinkSettings(name="erp", directory=tmp_path / "drop", **sink_options)
    settings = Settings(data_dir=tmp_path / "data", sinks=(sink,), tradecloud=tc, delivery=DELIVERY)
    async with Service(settings) as service:
        ids = [(await service.inbox.store(e)).event_id for e in events]
        service.dispatcher.notify()
        yield service.inbox, ids


async def settled(inbox: Inbox, ids: Sequence[str], within: float = 15.0) -> list[str]:
    async def statuses() -> list[str]:
        now = [(await inbox.get_event(i)).status for i in ids]
        assert "pending" not in now, f"still pending: {now}"
        return now

    return await eventually_async(statuses, within, interval=0.02)


def drop(tmp_path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() if p.is_file() else b"" for p in sorted((tmp_path / "drop").iterdir())}


class TestGetTriggers:
    """Triggers end as delivered full objects, one fetch per object."""

    async def test_triggers_are_delivered_as_full_objects(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        fake_api.add_order(ORDER)
        fake_api.add_shipment(SHIPMENT)
        events = [
            new_event(1, EventKind.ORDER_FETCH, {"orderId": "ord-1"}, order_id="ord-1"),
            new_event(2, EventKind.SHIPMENT_FETCH, {"shipmentId": "sup-SN9"}, shipment_id="sup-SN9"),
            new_event(3, EventKind.ORDER_FETCH, {"orderId": "ord-1"}, order_id="ord-1"),
            new_event(4, EventKind.ORDER_FETCH, {"orderId": "ord-1"}, order_id="ord-1"),
        ]
        async with running(tmp_path, tc_settings, events) as (inbox, ids):
            assert await settled(inbox, ids) == ["delivered"] * 4
        files = drop(tmp_path)
        assert len(files) == 4
        orders = [orjson.loads(v) for k, v in files.items() if "_OrderFetch_PO-1_" in k]
        shipments = [orjson.loads(v) for k, v in files.items() if "_ShipmentFetch_SN9_" in k]
        assert orders == [ORDER] * 3 and shipments == [SHIPMENT]
        assert len(fake_api.calls_to("/v2/order/")) == 1  # three pending triggers, one fetch
        assert len(fake_api.calls_to("/v2/shipment/")) == 1
        assert len(fake_api.calls_to("/v2/authentication/login")) == 1
        assert len(fake_api.calls_to("/v2/authentication/logout")) == 1  # on shutdown

    async def test_unknown_id_is_dead_lettered_with_the_reason(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        events = [new_event(1, EventKind.SHIPMENT_FETCH, {"shipmentId": "gone"}, shipment_id="gone")]
        async with running(tmp_path, tc_settings, events) as (inbox, ids):
            assert await settled(inbox, ids) == ["dead"]
            [delivery] = await inbox.deliveries(ids[0])
        assert delivery.attempts == 1
        assert delivery.last_error is not None and "shipment gone" in delivery.last_error
        assert "not found (HTTP 404)" in delivery.last_error

    async def test_outage_is_retried_until_it_recovers(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        fake_api.add_order(ORDER)
        fake_api.fail("/v2/order/", 503, times=3)
        fake_api.fail("/v2/authentication/login", 503, times=1)
        tc = tc_settings.model_copy(update={"max_retries": 0})  # let the dispatcher do the retrying
        events = [new_event(1, EventKind.ORDER_FETCH, {"orderId": "ord-1"}, order_id="ord-1")]
        async with running(tmp_path, tc, events) as (inbox, ids):
            assert await settled(inbox, ids) == ["delivered"]
            attempts = await inbox.attempts(ids[0])
        assert [a.outcome for a in attempts] == ["transient"] * 4 + ["delivered"]
        assert attempts[0].error is not None and "HTTP 503" in attempts[0].error
        [written] = drop(tmp_path).values()
        assert orjson.loads(written) == ORDER


class TestDocumentsAndEnrichment:
    """Document files and the full order arrive beside the event file."""

    async def test_documents_arrive_with_the_right_content(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        pdf = b"%PDF-1.7 " + bytes(range(256)) * 512
        fake_api.add_document(OBJ, "drawing.pdf", pdf, "application/pdf")
        fake_api.add_order(ORDER)
        fake_api.expired_urls = 1
        partner = fake_api.add_partner_file("cert.pdf", b"certificate")
        body = {
            "eventName": "OrderDocumentsAttachedBySupplier",
            "orderDocumentsEvent": {
                "orderId": "ord-1",
                "supplierOrder": {"documents": [{"name": "Drawing", "objectId": OBJ}]},
                "lines": [{"position": "0001", "documents": [{"url": partner}]}],
            },
        }
        events = [
            new_event(1, EventKind.ORDER_DOCUMENTS, body, order_id="ord-1"),
            new_event(
                2, EventKind.ORDER, {"orderEvent": {"orderId": "ord-1", "lines": [{"id": "l2"}]}}, order_id="ord-1"
            ),
        ]
        options = {
            "documents": True,
            "download_urls": True,
            "enrich": True,
            "download_hosts": ("127.0.0.1",),
            "allow_private_download_addresses": True,  # the fake partner server is on loopback
        }
        async with running(tmp_path, tc_settings, events, **options) as (inbox, ids):
            assert await settled(inbox, ids) == ["delivered", "delivered"]
        files = drop(tmp_path)
        [folder] = (tmp_path / "drop").glob("*.documents")
        documents = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert documents == {"drawing.pdf": pdf, "cert.pdf": b"certificate"}
        [full] = [v for k, v in files.items() if k.endswith(".full-order.json")]
        assert orjson.loads(full) == ORDER
        assert len(files) == 4  # two event files, the documents folder, one full order
        assert [c.status for c in fake_api.calls_to("/s3/")] == [403, 200]
