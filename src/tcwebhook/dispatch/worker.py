"""``tcwebhook worker``: the dispatcher alone, delivering what a separate ``serve`` stores."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import structlog

from tcwebhook.config import Settings
from tcwebhook.dispatch.dispatcher import Dispatcher
from tcwebhook.errors import StartupError
from tcwebhook.inbox.factory import open_inbox
from tcwebhook.sinks.base import Sink

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def delivery_sinks(settings: Settings) -> AsyncIterator[list[Sink]]:
    """The ``[[sinks]]``, wrapped for the Tradecloud API work of a delivery (GET triggers,
    ``enrich``, ``documents``); the API client lives as long as the context."""
    from tcwebhook.sinks.factory import build_sinks
    from tcwebhook.tradecloud_api.client import TradecloudClient
    from tcwebhook.tradecloud_api.sink import wrap_sinks

    sinks = build_sinks(settings)
    client = TradecloudClient(settings.tradecloud) if settings.tradecloud.configured else None
    try:
        yield wrap_sinks(sinks, settings, client)
    finally:
        if client is not None:
            await client.aclose()


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Deliver until ``stop`` is set (or SIGINT/SIGTERM), then shut down within the bound."""
    if not settings.sinks:
        raise StartupError("tcwebhook worker has nothing to deliver to: configure at least one [[sinks]] entry.")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            pass
    inbox = open_inbox(settings)
    await inbox.open()
    try:
        async with delivery_sinks(settings) as sinks:
            dispatcher = Dispatcher(inbox, sinks, settings.delivery)
            await dispatcher.start()
            if settings.delivery.mode == "sync":
                log.info("worker_sync_mode", note="new events are delivered by serve; replays by this worker")
            try:
                await stop.wait()
            finally:
                await dispatcher.stop(settings.delivery.shutdown_timeout)
    finally:
        await inbox.close()
        for sig in handled:
            loop.remove_signal_handler(sig)
