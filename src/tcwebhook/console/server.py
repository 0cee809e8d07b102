"""The console's own HTTPS listener: inside ``tcwebhook serve`` or alone (``tcwebhook console``).

It never shares the webhook port: the webhook listener faces Tradecloud, the console faces
operators (``[console] host`` defaults to loopback). It uses the webhook certificate unless
``[console] certfile``/``keyfile`` name another, and picks up renewed files the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Generator
from datetime import UTC, datetime
from pathlib import Path

import structlog
import uvicorn
from cryptography import x509

from tcwebhook.config import ServerSettings, Settings
from tcwebhook.console.app import ConsoleHooks, build_app
from tcwebhook.errors import StartupError
from tcwebhook.inbox.base import Inbox
from tcwebhook.transport.descriptors import CONSOLE_CONNECTIONS
from tcwebhook.transport.gate import ConnectionMetrics, Gate, Listener
from tcwebhook.transport.protocol import build_protocol
from tcwebhook.transport.server import bind_listener
from tcwebhook.transport.tls import ReloadingServerContext

log = structlog.get_logger(__name__)


def certificate_expiry(path: Path | None) -> datetime | None:
    """``notAfter`` of the first certificate in a PEM file; None when there is none to read."""
    if path is None:
        return None
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return None
    return certs[0].not_valid_after_utc.astimezone(UTC) if certs else None


def console_certificate(settings: Settings) -> tuple[Path, Path]:
    c = settings.console
    if c.certfile is not None and c.keyfile is not None:
        return c.certfile, c.keyfile
    if settings.tls.certfile is None or settings.tls.keyfile is None:
        raise StartupError(
            "The console needs a certificate: set [tls] certfile/keyfile, or [console] certfile/keyfile."
        )
    return settings.tls.certfile, settings.tls.keyfile


def check_console(settings: Settings) -> None:
    """The console's start-up checks that need no port: users, a certificate named."""
    if not settings.console.users:
        raise StartupError(
            "The console has no user: add a [[console.users]] entry with a password_hash "
            "from `tcwebhook console hash-password`."
        )
    console_certificate(settings)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the signals to its owner (``serve``, or ``run_console``).

    Like the webhook listener it accepts through a ``Listener`` (admission before TLS), which
    stops first on shutdown.
    """

    listener: Listener | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.listener is not None:
            self.listener.close()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def console_limits(settings: Settings) -> ServerSettings:
    """The webhook listener's protocol limits and accept gate, for the console's own listener.

    The head size and count, the request deadline and the per-address cap are ``[server]``'s;
    the total is the console's own, and the webhook allow-list and PROXY protocol do not apply
    (the console has its own ``host``).
    """
    return settings.server.model_copy(
        update={
            "max_connections": CONSOLE_CONNECTIONS,
            "allow_from": (),
            "proxy_protocol": False,
            "trusted_proxies": (),
        }
    )


class ConsoleListener:
    """Start with ``start`` (binds, so a taken port fails at start-up), stop with ``stop``."""

    def __init__(
        self,
        settings: Settings,
        inbox: Inbox,
        hooks: ConsoleHooks,
        *,
        webhook_tls: ReloadingServerContext | None = None,
    ) -> None:
        self.settings = settings
        self.inbox = inbox
        self.hooks = hooks
        # Without a certificate of its own the console shares the webhook listener's context
        # (and its reloading): one certificate, loaded and checked once.
        self._shared_tls = webhook_tls if settings.console.certfile is None else None
        self.tls: ReloadingServerContext | None = None
        self.server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._reload: asyncio.Task[None] | None = None
        self.bound_port = settings.console.port

    async def start(self) -> None:
        check_console(self.settings)
        s = self.settings
        if self._shared_tls is not None:
            self.tls = self._shared_tls
        else:
            certfile, keyfile = console_certificate(s)
            self.tls = ReloadingServerContext(
                certfile, keyfile, trust_store=s.tls.trust_store, expiry_warning_days=s.tls.expiry_warning_days
            )
        sock = self._bind()
        limits = console_limits(s)
        protocol = build_protocol(limits)
        config = uvicorn.Config(
            build_app(s, self.inbox, self.hooks),
            loop="none",
            http=protocol,
            lifespan="off",
            ws="none",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=15,
            timeout_graceful_shutdown=5,
            limit_concurrency=None,  # the gate's, before TLS
        )
        config.load()
        config.ssl = self.tls.context
        self.server = _QuietServer(config)
        self._task = asyncio.create_task(self.server.serve(sockets=[]), name="tcwebhook-console")
        while not self.server.started and not self._task.done():  # noqa: ASYNC110 - uvicorn exposes a flag only
            await asyncio.sleep(0.02)
        if self._task.done():
            self._task.result()
        listener = Listener(
            sock,
            Gate(limits, ConnectionMetrics()),
            self.tls.context,
            protocol.factory(self.server.config, self.server.server_state),
            s.server.tls_handshake_timeout,
        )
        listener.start()
        self.server.listener = listener
        self.bound_port = int(sock.getsockname()[1])
        if self._shared_tls is None:
            self._reload = asyncio.create_task(
                self.tls.keep_reloading(s.tls.reload_interval, "console_certificate_reload_failed")
            )
        log.info("console_listening", url=f"https://{s.console.host}:{self.bound_port}/")

    def _bind(self) -> socket.socket:
        console = self.settings.console
        return bind_listener(console.host, console.port, backlog=128, section="console", purpose=" for the console")

    async def wait(self) -> None:
        """Until the server stops (a signal, when it handles them)."""
        if self._task is not None:
            await self._task

    def request_stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True

    async def stop(self) -> None:
        if self._reload is not None:
            self._reload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reload
        if self.server is not None and self._task is not None:
            self.server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def run_console(
    settings: Settings,
    inbox: Inbox,
    hooks: ConsoleHooks,
    on_ready: Callable[[ConsoleListener], Awaitable[None] | None] | None = None,
) -> None:
    """The console alone on ``inbox`` (opened and closed here) until SIGTERM/SIGINT."""
    check_console(settings)
    await inbox.open()
    try:
        listener = ConsoleListener(settings, inbox, hooks)
        await listener.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, listener.request_stop)
        try:
            if on_ready is not None:
                maybe = on_ready(listener)
                if maybe is not None:
                    await maybe
            await listener.wait()
        finally:
            await listener.stop()
    finally:
        await inbox.close()
