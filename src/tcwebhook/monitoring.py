"""The metrics alerts are made of: store health, per-sink backlog and dead letters, delivery
latency and the certificate's expiry, next to the receiver's request metrics on one registry.

The store-derived gauges are read when Prometheus scrapes (``refresh``, awaited by ``/metrics``),
at most once per ``min_interval`` so several scrapers cost one set of queries; each query is
an index range (see ``Browser.sink_health``). A store that does not answer within ``timeout``
reads as down (``tcwebhook_store_up 0``) and leaves the other gauges as they were.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from prometheus_client import CollectorRegistry, Gauge, Histogram

from tcwebhook.errors import StoreError
from tcwebhook.inbox.base import Browser, Claim

log = structlog.get_logger(__name__)

# Commit to delivered: sub-second when the ERP is up, minutes to hours while it is down.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)


class ServiceMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        inbox: Browser,
        sinks: Sequence[str],
        *,
        min_interval: float = 2.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inbox = inbox
        self._sinks = tuple(sinks)
        # The webhook certificate's notAfter; set by whoever owns the TLS context.
        self.certificate_source: Callable[[], datetime | None] = lambda: None
        self._min_interval = min_interval
        self._timeout = timeout
        self._clock = clock
        self._refreshed_at: float | None = None
        self._lock = asyncio.Lock()
        self.store_up = Gauge(
            "tcwebhook_store_up",
            "1 when the event store took a write transaction at the last scrape",
            registry=registry,
        )
        self.backlog = Gauge(
            "tcwebhook_sink_backlog", "Pending deliveries per sink", ["sink"], registry=registry
        )
        self.oldest_pending = Gauge(
            "tcwebhook_sink_oldest_pending_age_seconds",
            "Age of the oldest pending event per sink (0 when none is pending)",
            ["sink"],
            registry=registry,
        )
        self.dead_letters = Gauge(
            "tcwebhook_sink_dead_letters", "Dead deliveries per sink (until replayed)", ["sink"], registry=registry
        )
        self.latency = Histogram(
            "tcwebhook_delivery_latency_seconds",
            "Time from the event's commit to its delivery, per sink",
            ["sink"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.certificate_expiry = Gauge(
            "tcwebhook_certificate_expiry_timestamp_seconds",
            "notAfter of the webhook listener's certificate (Unix time)",
            registry=registry,
        )
        for sink in self._sinks:
            # Present from the first scrape, so an alert on them never starts from "no data".
            self.backlog.labels(sink)
            self.oldest_pending.labels(sink)
            self.dead_letters.labels(sink)
            self.latency.labels(sink)

    def delivered(self, claim: Claim) -> None:
        """The dispatcher's hook: ``claim`` was delivered just now.

        A replayed delivery is left out: its time since the commit is the age of the replayed
        event (days, for a replay of last week), which would fill the top bucket and page someone.
        """
        if claim.replayed:
            return
        received = claim.event.received_at.timestamp()
        self.latency.labels(claim.sink).observe(max(time.time() - received, 0.0))

    async def refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._refreshed_at is not None and now - self._refreshed_at < self._min_interval:
                return
            self._refreshed_at = now
            expiry = self.certificate_source()
            if expiry is not None:
                self.certificate_expiry.set(expiry.timestamp())
            try:
                async with asyncio.timeout(self._timeout):
                    await self._inbox.ping()
                    health = await self._inbox.sink_health(self._sinks)
            except (StoreError, TimeoutError) as exc:
                self.store_up.set(0)
                log.warning("metrics_store_unavailable", error=str(exc) or type(exc).__name__)
                return
            self.store_up.set(1)
            wall = time.time()
            for h in health:
                self.backlog.labels(h.sink).set(h.backlog)
                self.dead_letters.labels(h.sink).set(h.dead)
                oldest = h.oldest_pending_at
                self.oldest_pending.labels(h.sink).set(0.0 if oldest is None else max(wall - oldest.timestamp(), 0.0))
