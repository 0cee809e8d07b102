"""The composition root: every object the settings describe is built here, and only here.

``serve``, ``worker`` and ``check-config`` all start from this module::

    Settings ──► Service.open()
                   ├─ sinks       [[sinks]] → sinks.factory.build_sinks
                   │              → sinks.tradecloud.wrap_sinks (GET triggers, enrich, documents)
                   ├─ tradecloud  TradecloudClient, when [tradecloud] has credentials
                   ├─ inbox       inbox.factory.open_inbox ([store] url)
                   ├─ dispatcher  Dispatcher(inbox, sinks)
                   └─ reconciler  BackgroundReconciler, when [reconcile] interval is set
                 Service.receiver()  the ASGI app of ``serve`` (receiver + OpenAPI document,
                                     OAuthValidator when [auth.oauth] is set)

    serve:   HttpsServer.load() (certificate checks) → Service.open() → console (if [console] enabled)
             → HttpsServer.serve(receiver)
    worker:  Service.open() → wait for SIGTERM/SIGINT
    console: open_inbox() alone (no sinks, no dispatcher) → ConsoleListener until SIGTERM/SIGINT

``Service.close`` releases in reverse order: the dispatcher drains and closes the sinks, then the
inbox and the API client close. A new component is built in ``open`` (register its clean-up on
the exit stack there), and whatever can be checked without network or store goes in ``check``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, Counter

from tcwebhook.auth.oauth import OAuthValidator
from tcwebhook.config import Settings
from tcwebhook.contract.openapi import build_openapi
from tcwebhook.dispatch.dispatcher import Dispatcher
from tcwebhook.errors import StartupError
from tcwebhook.inbox.base import Inbox
from tcwebhook.inbox.factory import open_inbox
from tcwebhook.monitoring import ServiceMetrics
from tcwebhook.orderbook.store import BookStore
from tcwebhook.receiver.app import Receiver
from tcwebhook.receiver.metrics import ReceiverMetrics
from tcwebhook.reconcile.background import BackgroundReconciler, ReconcileMetrics, check_reconcile_options
from tcwebhook.reload import Reloader
from tcwebhook.sinks.base import EventSink, Probed, Sink
from tcwebhook.sinks.factory import build_sinks
from tcwebhook.sinks.tradecloud import check_api_options, wrap_sinks
from tcwebhook.telemetry import Tracing, start_tracing
from tcwebhook.tradecloud_api.client import TradecloudClient
from tcwebhook.tradecloud_api.fetch import FetchResolver
from tcwebhook.transport.acme import CertificateManager, keep_renewed, managed_certificate
from tcwebhook.transport.certcheck import CertReport
from tcwebhook.transport.descriptors import ensure_open_file_limit
from tcwebhook.transport.server import HttpsServer, run
from tcwebhook.transport.systemd import Notifier
from tcwebhook.transport.tls import ReloadingServerContext

if TYPE_CHECKING:
    from tcwebhook.console.server import ConsoleListener

log = structlog.get_logger(__name__)


class Service:
    """The store, the sinks, the Tradecloud client and the dispatcher of one process."""

    def __init__(self, settings: Settings, role: str = "serve") -> None:
        self.settings = settings
        self.role = role  # what this process is, on its traces
        self.tracing = Tracing.off()
        self._inbox: Inbox | None = None
        self._dispatcher: Dispatcher | None = None
        self.tradecloud: TradecloudClient | None = None
        # One registry for the receiver's request metrics and the store/delivery metrics.
        self.registry = CollectorRegistry()
        self.metrics: ServiceMetrics | None = None
        self._resources = contextlib.AsyncExitStack()
        self.reconciler: BackgroundReconciler | None = None

    @property
    def inbox(self) -> Inbox:
        if self._inbox is None:
            raise RuntimeError("the service is not open")
        return self._inbox

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            raise RuntimeError("the service is not open")
        return self._dispatcher

    def check(self) -> None:
        """The checks of ``open`` that need no store and no network (``check-config``)."""
        build_sinks(self.settings)  # resolves python callables and sink settings
        check_api_options(self.settings)
        check_reconcile_options(self.settings)
        if self.settings.auth.oauth is not None:
            OAuthValidator(self.settings.auth.oauth)  # refuses an unusable ca_bundle
        if self.settings.console.enabled:
            from tcwebhook.console.server import check_console

            check_console(self.settings)

    def sinks(self, book: BookStore | None = None) -> list[Sink]:
        """The ``[[sinks]]``, wrapped for the Tradecloud API work of a delivery and the order book."""
        return wrap_sinks(build_sinks(self.settings), self.settings, self.tradecloud, book)

    async def reachable_sinks(self, book: BookStore | None = None) -> list[Sink]:
        """``sinks()``, after connecting once to each sink that has a server (sftp, amqp, sql).

        A sink that cannot be reached, or whose server lacks what deliveries need, is a
        StartupError naming it; the connections made are kept for the deliveries.
        """
        built = build_sinks(self.settings)
        try:
            await probe_sinks(built)
            return wrap_sinks(built, self.settings, self.tradecloud, book)
        except BaseException:
            await _close_all(built)
            raise

    async def open(self) -> None:
        """Build and start everything; raises StartupError (and releases what was built) if impossible."""
        s = self.settings
        try:
            self.tracing = start_tracing(s.telemetry, self.role)
            self._resources.callback(self.tracing.shutdown)
            check_api_options(s)
            if s.tradecloud.configured:
                self.tradecloud = TradecloudClient(s.tradecloud)
                self._resources.push_async_callback(self.tradecloud.aclose)
            inbox = open_inbox(s)  # not opened yet: the sinks' start-up errors come first
            # The book is read at delivery time only, once the store is open.
            sinks = await self.reachable_sinks(inbox if isinstance(inbox, BookStore) else None)
            # Until the dispatcher owns them (it closes them when it stops), closed here.
            self._resources.push_async_callback(self._close_unowned, sinks)
            await inbox.open()
            self._inbox = inbox
            self._resources.push_async_callback(inbox.close)
            self.metrics = ServiceMetrics(self.registry, inbox, [sink.name for sink in sinks])
            dispatcher = Dispatcher(
                inbox, sinks, s.delivery, on_delivered=self.metrics.delivered, tracing=self.tracing,
                accept_unknown=[c.name for c in s.sinks if c.accept_unknown],
            )
            await dispatcher.start()
            self._dispatcher = dispatcher
            self._resources.push_async_callback(dispatcher.stop, s.delivery.shutdown_timeout)
            check_reconcile_options(s)
            if s.reconcile.interval is not None and self.tradecloud is not None:
                # One process per store runs it (an inbox lease); it stops first on close.
                reconciler = BackgroundReconciler(
                    s, inbox, self.tradecloud, metrics=ReconcileMetrics(self.registry)
                )
                reconciler.start()
                self.reconciler = reconciler
                self._resources.push_async_callback(reconciler.stop)
        except BaseException:
            await self.close()
            raise

    async def _close_unowned(self, sinks: Sequence[Sink]) -> None:
        if self._dispatcher is None:
            for sink in sinks:
                with contextlib.suppress(Exception):
                    await sink.close()

    async def close(self) -> None:
        """Stop the dispatcher (it closes the sinks), then the store and the API client."""
        await self._resources.aclose()

    async def __aenter__(self) -> Service:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def console(self, webhook_tls: ReloadingServerContext | None) -> AsyncIterator[ConsoleListener | None]:
        """The operator console on its own listener while the context lasts ([console] enabled)."""
        if not self.settings.console.enabled:
            yield None
            return
        from tcwebhook.console.app import ConsoleHooks
        from tcwebhook.console.server import ConsoleListener, certificate_expiry

        settings = self.settings
        dispatcher = self.dispatcher

        def expiry() -> datetime | None:
            if webhook_tls is not None:
                return webhook_tls.report.not_after
            return certificate_expiry(settings.tls.certfile)

        fetch = FetchResolver(self.tradecloud).fetch if self.tradecloud is not None else None
        hooks = ConsoleHooks(certificate_expiry=expiry, on_requeued=dispatcher.notify, fetch_object=fetch)
        listener = ConsoleListener(settings, self.inbox, hooks, webhook_tls=webhook_tls)
        await listener.start()
        try:
            yield listener
        finally:
            await listener.stop()

    def receiver(self, webhook_tls: ReloadingServerContext | None = None) -> Receiver:
        """The ASGI app of ``serve``: stores webhooks, wakes (or, in sync mode, runs) the dispatcher."""
        s = self.settings
        assert self.metrics is not None
        if webhook_tls is not None:
            self.metrics.certificate_source = lambda: webhook_tls.report.not_after
        return Receiver(
            s,
            self.inbox,
            sync_delivery=self.dispatcher,
            openapi=build_openapi(s.routes.orders, s.routes.shipments),
            on_stored=self.dispatcher.notify,
            oauth=OAuthValidator(s.auth.oauth) if s.auth.oauth is not None else None,
            metrics=ReceiverMetrics(self.registry),
            before_metrics=self.metrics.refresh,
            tracing=self.tracing,
        )


@dataclass(frozen=True, slots=True)
class SinkReach:
    """What ``check-config`` found for one sink."""

    name: str
    type: str
    detail: str  # what a connection found, or why the sink is checked only when delivering


async def probe_sinks(sinks: Sequence[EventSink]) -> list[SinkReach]:
    """Connect once to every sink with a server; StartupError (naming the sink) for the first that fails."""
    found: list[SinkReach] = []
    for sink in sinks:
        kind = type(sink).__name__.removesuffix("Sink").lower()
        if isinstance(sink, Probed):
            found.append(SinkReach(sink.name, kind, await sink.probe()))
        else:
            found.append(SinkReach(sink.name, kind, "not connected to before a delivery"))
    return found


async def _close_all(sinks: Sequence[Sink]) -> None:
    for sink in sinks:
        with contextlib.suppress(Exception):
            await sink.close()


def check_sinks(settings: Settings) -> list[SinkReach]:
    """``check-config``'s reachability check: each sink built and, when it has a server, connected to."""

    async def main() -> list[SinkReach]:
        built = build_sinks(settings)
        try:
            return await probe_sinks(built)
        finally:
            await _close_all(built)

    return asyncio.run(main())


def check(settings: Settings) -> CertReport | None:
    """Every start-up check of ``serve`` that needs no port and no store.

    None when ``[tls] acme`` has no usable certificate yet (``serve`` orders one first).
    """
    report: CertReport | None = None
    if settings.tls.acme:
        manager = CertificateManager(settings)
        if manager.unusable() is None:
            report = HttpsServer(manager.with_certificate()).check()
    else:
        report = HttpsServer(settings).check()
    Service(settings).check()
    ensure_open_file_limit(settings)
    return report


def serve(
    settings: Settings,
    on_ready: Callable[[HttpsServer, ConsoleListener | None], Awaitable[None] | None] | None = None,
    reload: Callable[[], Settings] | None = None,
) -> None:
    """Receive (and deliver) until SIGTERM/SIGINT; raises StartupError on a bad setup.

    ``reload`` reads the configuration again: with it, SIGHUP applies new ``[auth]`` and ``[tls]``.
    Under systemd the service reports ready once it listens, and answers the watchdog.
    ``on_ready`` gets the listening server and the console (None when disabled), whose bound
    ports are the real ones also when the configured port is 0.
    """
    notifier = Notifier()
    ensure_open_file_limit(settings)
    early_hangup = _queue_hangups()

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            effective, acme = settings, None
            if settings.tls.acme:
                acme = await stack.enter_async_context(managed_certificate(settings))
                effective = acme.with_certificate()
            server = HttpsServer(effective)
            server.load()  # the certificate first: nothing else is opened for a bad one
            service = await stack.enter_async_context(Service(effective))
            console = await stack.enter_async_context(service.console(server.tls))

            async def ready(listening: HttpsServer) -> None:
                notifier.ready(f"listening on {settings.server.host}:{listening.bound_port}")
                if on_ready is not None:
                    maybe = on_ready(listening, console)
                    if maybe is not None:
                        await maybe

            receiver = service.receiver(server.tls)
            if acme is not None:
                assert server.tls is not None
                server.tls.challenges = acme.challenges
                failures = Counter("tcwebhook_acme_renewal_failures_total", "Failed ACME renewal attempts.",
                                   registry=service.registry)
                stack.enter_context(_background(keep_renewed(acme, server.tls.maybe_reload, failures.inc)))
            reloader = (
                Reloader(effective, reload, receiver, server.tls, notifier, audit=service.inbox) if reload else None
            )
            with _on_signal(signal.SIGHUP, reloader.reload if reloader else None):
                if reloader is not None and early_hangup.is_set():
                    # A SIGHUP during start-up was kept for now: the file may have changed since it was read.
                    asyncio.get_running_loop().call_soon(reloader.reload)
                async with notifier.watchdog():
                    await server.serve(receiver, ready, registry=receiver.metrics.registry)
            notifier.stopping()
        log.info("stopped")

    run(main(), handshake_timeout=settings.server.tls_handshake_timeout)


def serve_console(settings: Settings) -> None:
    """``tcwebhook console``: the console alone on the configured store, until SIGTERM/SIGINT.

    No sinks and no dispatcher here: replays made in it are delivered by the ``serve`` or
    ``worker`` that delivers for this store, at its next poll.
    """
    from tcwebhook.console.app import ConsoleHooks
    from tcwebhook.console.server import certificate_expiry, run_console

    async def main() -> None:
        client = TradecloudClient(settings.tradecloud) if settings.tradecloud.configured else None
        try:
            hooks = ConsoleHooks(
                certificate_expiry=lambda: certificate_expiry(settings.tls.certfile),
                fetch_object=FetchResolver(client).fetch if client is not None else None,
            )
            await run_console(settings, open_inbox(settings, hold_new=False), hooks)
        finally:
            if client is not None:
                await client.aclose()

    asyncio.run(main())


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Deliver, without receiving, until ``stop`` is set (or SIGINT/SIGTERM); then drain within the bound."""
    if not settings.sinks:
        raise StartupError("tcwebhook worker has nothing to deliver to: configure at least one [[sinks]] entry.")
    stop = stop or asyncio.Event()
    notifier = Notifier()
    with _stop_on_signals(stop):
        async with Service(settings, role="worker") as service, contextlib.AsyncExitStack() as stack:
            if settings.worker.metrics_port is not None:
                from tcwebhook.metrics_listener import metrics_listener

                assert service.metrics is not None
                await stack.enter_async_context(
                    metrics_listener(
                        settings.worker.metrics_host,
                        settings.worker.metrics_port,
                        service.registry,
                        refresh=service.metrics.refresh,
                        ping=service.inbox.ping,
                    )
                )
            if settings.delivery.mode == "sync":
                log.info("worker_sync_mode", note="new events are delivered by serve; replays by this worker")
            notifier.ready("delivering")
            async with notifier.watchdog():
                await stop.wait()
            notifier.stopping()


@contextlib.contextmanager
def _background(work: Coroutine[Any, Any, None]) -> Iterator[None]:
    """Run ``work`` as a task while the context lasts; it is cancelled on exit."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()


@contextlib.contextmanager
def _on_signal(sig: signal.Signals, handler: Callable[[], object] | None) -> Iterator[None]:
    """Run ``handler`` on the loop when ``sig`` arrives, while the context lasts (if given)."""
    loop = asyncio.get_running_loop()
    installed = False
    if handler is not None:
        try:
            loop.add_signal_handler(sig, handler)
            installed = True
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            pass
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(sig)


def _queue_hangups() -> threading.Event:
    """Until the reloader takes SIGHUP over, remember it instead of dying of it (its default action)."""
    seen = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, lambda _sig, _frame: seen.set())
    return seen


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            pass
    try:
        yield
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
