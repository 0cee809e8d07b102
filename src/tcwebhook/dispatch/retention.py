"""Retention: the dispatcher deletes what ``[store] retention`` and ``audit_retention`` no longer keep."""

from __future__ import annotations

import asyncio
import time

import structlog

from tcwebhook.errors import StoreError
from tcwebhook.inbox.base import DeliveryQueue

log = structlog.get_logger(__name__)

RETENTION_INTERVAL = 600.0  # at most this long between two retention passes (seconds)
RETENTION_BATCH = 500


async def keep_retention(inbox: DeliveryQueue) -> None:
    """Delete events settled longer than ``[store] retention`` ago, in small batches, and audit
    entries older than ``[store] audit_retention``, every tenth of the shorter span (runs until
    cancelled)."""
    retention, audit_retention = inbox.retention(), inbox.audit_retention()
    spans = [span for span in (retention, audit_retention) if span is not None]
    interval = min(max(min(spans) / 10.0, 1.0), RETENTION_INTERVAL)
    while True:
        if retention is not None:
            await _prune(inbox, retention)
        if audit_retention is not None:
            await _expire_audit(inbox, audit_retention)
        await asyncio.sleep(interval)


async def _prune(inbox: DeliveryQueue, retention: float) -> None:
    pruned = 0
    try:
        while True:
            count = await inbox.prune(time.time() - retention, RETENTION_BATCH)
            pruned += count
            if count < RETENTION_BATCH:
                break
            await asyncio.sleep(0)  # let receiving and delivery in between batches
    except StoreError as exc:
        log.warning("retention_failed", error=str(exc))
    if pruned:
        log.info("retention_pruned", events=pruned, older_than_seconds=retention)


async def _expire_audit(inbox: DeliveryQueue, audit_retention: float) -> None:
    try:
        expired = await inbox.expire_audit(time.time() - audit_retention)
    except StoreError as exc:
        log.warning("audit_retention_failed", error=str(exc))
        return
    if expired:
        log.info("audit_expired", entries=expired, older_than_seconds=audit_retention)
