"""ServiceMetrics: store-derived gauges read at scrape time, store down, the latency histogram."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from tests.inbox.conftest import order_event

from tcwebhook.config import StoreSettings
from tcwebhook.inbox import AttemptOutcome, AttemptResult, DeliveryStatus, SqliteInbox
from tcwebhook.monitoring import ServiceMetrics

pytestmark = pytest.mark.anyio


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


class TestServiceMetrics:
    """Backlog, dead letters, oldest pending, store up/down, certificate expiry, latency."""

    async def test_gauges_follow_the_store(self, tmp_path: Path) -> None:
        inbox = SqliteInbox(tmp_path / "inbox.db", StoreSettings(), sinks=("erp",))
        await inbox.open()
        registry = CollectorRegistry()
        metrics = ServiceMetrics(registry, inbox, ["erp"], min_interval=0.0)
        metrics.certificate_source = lambda: datetime(2030, 1, 1, tzinfo=UTC)
        try:
            for i in range(3):
                await inbox.store(order_event(i, key=f"order:k{i}"))
            claims = await inbox.claim_due(owner="t", sinks=["erp"], limit=2, lease=30, stale_kinds=frozenset())
            await inbox.finish(claims[0], AttemptResult(DeliveryStatus.DEAD, AttemptOutcome.PERMANENT, time.time()))
            delivered = AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, time.time())
            await inbox.finish(claims[1], delivered)
            metrics.delivered(claims[1])
            await metrics.refresh()
            assert value(registry, "tcwebhook_store_up") == 1
            assert value(registry, "tcwebhook_sink_backlog", sink="erp") == 1
            assert value(registry, "tcwebhook_sink_dead_letters", sink="erp") == 1
            age = value(registry, "tcwebhook_sink_oldest_pending_age_seconds", sink="erp")
            assert age is not None and 0 <= age < 120  # the pending event was stored just now
            assert value(registry, "tcwebhook_certificate_expiry_timestamp_seconds") == 1893456000
            assert value(registry, "tcwebhook_delivery_latency_seconds_count", sink="erp") == 1
        finally:
            await inbox.close()
        await metrics.refresh()  # the store is closed now
        assert value(registry, "tcwebhook_store_up") == 0
        assert value(registry, "tcwebhook_sink_backlog", sink="erp") == 1  # the last known value stays

    async def test_replayed_deliveries_stay_out_of_the_latency(self, tmp_path: Path) -> None:
        inbox = SqliteInbox(tmp_path / "inbox.db", StoreSettings(), sinks=("erp",))
        await inbox.open()
        registry = CollectorRegistry()
        metrics = ServiceMetrics(registry, inbox, ["erp"], min_interval=0.0)
        try:
            event_id = (await inbox.store(order_event(1))).event_id
            (claim,) = await inbox.claim_due(owner="t", sinks=["erp"], limit=1, lease=30, stale_kinds=frozenset())
            await inbox.finish(claim, AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, time.time()))
            metrics.delivered(claim)
            await inbox.replay([event_id])
            (again,) = await inbox.claim_due(owner="t", sinks=["erp"], limit=1, lease=30, stale_kinds=frozenset())
            assert again.replayed and not claim.replayed
            await inbox.finish(again, AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, time.time()))
            metrics.delivered(again)
            assert value(registry, "tcwebhook_delivery_latency_seconds_count", sink="erp") == 1
        finally:
            await inbox.close()

    async def test_scrapes_within_the_interval_share_one_refresh(self, tmp_path: Path) -> None:
        inbox = SqliteInbox(tmp_path / "inbox.db", StoreSettings(), sinks=("erp",))
        await inbox.open()
        registry = CollectorRegistry()
        metrics = ServiceMetrics(registry, inbox, ["erp"], min_interval=60.0)
        try:
            await metrics.refresh()
            await inbox.store(order_event(1))
            await metrics.refresh()
            assert value(registry, "tcwebhook_sink_backlog", sink="erp") == 0
        finally:
            await inbox.close()
        assert b"tcwebhook_sink_backlog" in generate_latest(registry)
