"""The certificate under ``serve``: the first order before webhooks are taken, then renewal forever."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import structlog

from tcwebhook.backoff import Backoff
from tcwebhook.config import Settings
from tcwebhook.errors import AcmeError
from tcwebhook.transport.acme.listeners import http01_listener, tls_alpn01_listener
from tcwebhook.transport.acme.ordering import CertificateManager

log = structlog.get_logger("tcwebhook.transport.acme")

# After a failed order: 1 min, doubling, at most 6 h between attempts (the CA's rate limits
# punish clients that hammer it; the current certificate stays in use meanwhile).
RENEWAL_BACKOFF = Backoff(initial=60.0, multiplier=2.0, cap=6 * 3600.0, jitter=0.1)
RENEW_REQUEST = "renew-request"  # written by `tcwebhook certificate renew`, read by a running serve


@contextlib.asynccontextmanager
async def managed_certificate(
    settings: Settings, backoff: Backoff = RENEWAL_BACKOFF
) -> AsyncIterator[CertificateManager]:
    """A usable certificate on disk (ordered now if there is none), and the challenge listener.

    With no usable certificate, serve waits here for the first one: no webhook can be accepted
    without it, and Tradecloud retries meanwhile.
    """
    manager = CertificateManager(settings)
    host = settings.server.host
    async with contextlib.AsyncExitStack() as stack:
        if settings.tls.acme_challenge == "http-01":
            listener = http01_listener(host, settings.server.http_port, manager.challenges, settings.server)
            await stack.enter_async_context(listener)
        failures = 0
        while (reason := manager.unusable()) is not None:
            log.info("acme.first_certificate", hostname=manager.hostname, reason=reason)
            try:
                if settings.tls.acme_challenge == "tls-alpn-01":
                    async with tls_alpn01_listener(host, settings.server.port, manager.challenges, manager.hostname):
                        await asyncio.to_thread(manager.obtain, force=True)
                else:
                    await asyncio.to_thread(manager.obtain, force=True)
            except AcmeError as exc:
                failures += 1
                wait = backoff.delay(failures)
                log.error("acme.order_failed", hostname=manager.hostname, error=str(exc), retry_in=round(wait, 1))
                await asyncio.sleep(wait)
        yield manager


async def keep_renewed(
    manager: CertificateManager,
    reload: Callable[[], bool],
    on_failure: Callable[[], None] | None = None,
    backoff: Backoff = RENEWAL_BACKOFF,
    poll: float = 1.0,
) -> None:
    """Renew when due (or asked to), forever; ``reload`` swaps the new files in."""
    failures = 0
    request = manager.files.directory / RENEW_REQUEST
    while True:
        wait = backoff.delay(failures) if failures else manager.settings.tls.acme_check_interval
        deadline = time.monotonic() + wait
        # A file, not an Event: the request comes from another process (`certificate renew`).
        while time.monotonic() < deadline and not request.exists():  # noqa: ASYNC110
            await asyncio.sleep(min(poll, max(deadline - time.monotonic(), 0)))
        forced = request.exists()
        if forced:
            with contextlib.suppress(FileNotFoundError):
                request.unlink()
        try:
            renewed = await asyncio.to_thread(manager.obtain, force=forced)
        except AcmeError as exc:
            failures += 1
            if on_failure is not None:
                on_failure()
            log.error("acme.renewal_failed", hostname=manager.hostname, error=str(exc),
                      retry_in=round(backoff.delay(failures), 1), action="the current certificate stays in use")
            continue
        failures = 0
        if renewed:
            reload()
