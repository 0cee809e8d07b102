"""Enrichment: the whole current order beside an order event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tcwebhook.config import TradecloudSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import PermanentError, TransientError
from tcwebhook.tradecloud_api import Enricher, TradecloudClient

from .conftest import FAST, make_event
from .fake_api import FakeTradecloud

pytestmark = pytest.mark.anyio

ORDER = {"id": "ord-1", "lines": [{"id": "l1"}, {"id": "l2"}, {"id": "l3"}]}
EVENT = {"eventName": "OrderLinesAcceptedBySupplier", "orderEvent": {"orderId": "ord-1", "lines": [{"id": "l2"}]}}


class TestEnricher:
    """Order events get ``full_order``; other kinds are left alone."""

    async def test_full_order_from_the_body(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        fake_api.add_order(ORDER)
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            enricher = Enricher(tc)
            assert await enricher.extras(make_event(EventKind.ORDER, EVENT)) == {"full_order": ORDER}
            assert await enricher.extras(make_event(EventKind.SHIPMENT, {"shipment": {}})) == {}

    async def test_order_id_column_wins_and_fetches_are_shared(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        past = datetime.now(UTC) - timedelta(seconds=1)
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            enricher = Enricher(tc)
            for seq in (1, 2, 3):
                event = make_event(EventKind.ORDER, b"{}", seq=seq, order_id="ord-1", received_at=past)
                assert await enricher.full_order(event) == ORDER
        assert len(fake_api.calls_to("/v2/order/")) == 1

    async def test_errors_are_mapped(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            enricher = Enricher(tc)
            with pytest.raises(PermanentError, match="no orderId"):
                await enricher.full_order(make_event(EventKind.ORDER, {"orderEvent": {}}))
            with pytest.raises(PermanentError, match="not found"):
                await enricher.full_order(make_event(EventKind.ORDER, EVENT))
            fake_api.fail("/v2/order/", 503, times=4)
            with pytest.raises(TransientError, match="503"):
                await enricher.full_order(make_event(EventKind.ORDER, EVENT, seq=2))
