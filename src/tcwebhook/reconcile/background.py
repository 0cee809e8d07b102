"""``[reconcile] interval``: reconciliation in the background of ``serve`` or ``worker``.

Only one process per store runs it: each run needs the inbox lease ``reconcile``, which the
holder renews on every run and which lasts longer than the interval, so a second process stays
idle until the holder stops (it releases the lease) or dies (the lease runs out). Runs cut short
by API trouble are retried with back-off, resuming from the high-water mark in the inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket

import structlog
from prometheus_client import CollectorRegistry, Counter

from tcwebhook.config import Settings
from tcwebhook.errors import StartupError
from tcwebhook.inbox.base import Reconciling
from tcwebhook.reconcile.reconciler import ReconcileApi, Reconciler, Report

log = structlog.get_logger(__name__)

LEASE = "reconcile"
FIRST_RETRY = 30.0  # seconds after a failed run; doubles up to the interval


class ReconcileMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.gaps = Counter(
            "tcwebhook_reconcile_gaps_total",
            "Changes found by reconciliation that no webhook delivered, by kind, reason and outcome",
            ["kind", "reason", "outcome"],
            registry=self.registry,
        )
        self.runs = Counter(
            "tcwebhook_reconcile_runs_total",
            "Reconciliation runs by result (complete, incomplete)",
            ["result"],
            registry=self.registry,
        )

    def record(self, report: Report) -> None:
        self.runs.labels("complete" if report.complete else "incomplete").inc()
        for gap in report.gaps:
            outcome = gap.outcome.partition(":")[0] or "reported"
            self.gaps.labels(gap.noun, gap.reason, outcome).inc()


class BackgroundReconciler:
    def __init__(
        self,
        settings: Settings,
        inbox: Reconciling,
        api: ReconcileApi,
        *,
        metrics: ReconcileMetrics | None = None,
        owner: str | None = None,
    ) -> None:
        assert settings.reconcile.interval is not None
        self._settings = settings
        self._interval = settings.reconcile.interval
        self._inbox = inbox
        self._reconciler = Reconciler(settings, inbox, api)
        self.metrics = metrics or ReconcileMetrics()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="tcwebhook-reconcile")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._inbox.release_lease(LEASE, self.owner)

    async def run_once(self) -> Report | None:
        """One run if this process holds the lease; None when another process does."""
        cfg = self._settings.reconcile
        if not await self._inbox.acquire_lease(LEASE, self.owner, self._interval + cfg.lease):
            return None
        report = await self._reconciler.run(action=cfg.action, orders=cfg.orders, shipments=cfg.shipments)
        self.runs += 1
        self.metrics.record(report)
        log.info(
            "reconcile_run",
            complete=report.complete,
            checked=report.checked,
            gaps=len(report.gaps),
            action=report.action,
            errors=report.errors,
        )
        return report

    async def _loop(self) -> None:
        retry = FIRST_RETRY
        while not self._stop.is_set():
            delay = self._interval
            try:
                report = await self.run_once()
            except Exception:  # the store failed: try again later, never take the service down
                log.exception("reconcile_failed")
                report = None
                delay, retry = min(retry, self._interval), min(retry * 2, self._interval)
            else:
                if report is not None and not report.complete:
                    delay, retry = min(retry, self._interval), min(retry * 2, self._interval)
                elif report is not None:
                    retry = FIRST_RETRY
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)


def check_reconcile_options(settings: Settings) -> None:
    """``[reconcile] interval`` needs an integration user for the polling API."""
    if settings.reconcile.interval is not None and not settings.tradecloud.configured:
        raise StartupError(
            "[reconcile] interval is set but [tradecloud] username/password are not: "
            "reconciliation needs an integration user for the polling API."
        )
