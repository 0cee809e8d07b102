"""The HTTPS server: uvicorn on our own TLS context, with slow-client timeouts and a graceful stop.

It serves whatever ASGI app it is given; ``tcwebhook.service`` builds the app and the rest. The
certificate is checked (``load``) before anything else is built and the port is opened last, so
a misconfiguration exits 3 without ever answering a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator
from pathlib import Path
from typing import Any

import structlog
import uvicorn
import uvloop
from prometheus_client import CollectorRegistry

from tcwebhook.config import Settings
from tcwebhook.errors import StartupError
from tcwebhook.transport.certcheck import CertReport, check_certificate_setup
from tcwebhook.transport.gate import ConnectionMetrics, Gate, Listener
from tcwebhook.transport.protocol import build_protocol
from tcwebhook.transport.tls import KEY_EXCHANGE_GROUPS, OPENSSL_CONFIG, ReloadingServerContext, accepted_groups

log = structlog.get_logger(__name__)

# Allocations (minus frees) between young-generation collections; CPython's default is 700.
GC_YOUNG_THRESHOLD = 20_000
# Seconds a thread keeps the GIL while another waits for it; CPython's default is 0.005.
SWITCH_INTERVAL = 0.0005


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a server that keeps many requests in flight.

    Every in-flight request holds a few hundred young objects (parsed body, ASGI messages) while
    its commit is pending. With CPython's defaults a young collection runs every few requests,
    those objects outlive two of them and are promoted, and every few hundred requests a full
    collection walks the whole start-up heap (tens of ms, a long latency tail). Freezing the
    start-up heap takes it out of every collection; a larger young threshold lets in-flight
    objects die by reference counting before a collection sees them. The request path makes no
    reference cycles, so this does not hold garbage back.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def tune_threads() -> None:
    """Let a thread waiting for the GIL have it within ``SWITCH_INTERVAL``.

    The SQLite inbox runs its statements on threads, which release the GIL around every SQLite
    call and must win it back for the next. While requests keep the event loop busy, CPython
    hands it over only when the switch interval has passed: 5 ms per statement by default, so
    under load one claim or settle of eight deliveries took up to two seconds, and the dispatcher
    fell behind intake (39 deliveries/s during intake, against 2,200/s alone).
    """
    sys.setswitchinterval(SWITCH_INTERVAL)


class _Server(uvicorn.Server):
    """uvicorn's server without re-raising SIGTERM after a graceful stop, so the exit code is 0.

    It accepts through our ``Listener`` (admission before TLS), which stops first on shutdown.
    """

    listener: Listener | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.listener is not None:
            self.listener.close()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def bind_listener(host: str, port: int, *, backlog: int, section: str, purpose: str = "") -> socket.socket:
    """The listening socket, bound before anything answers; a busy port is a start-up error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        raise StartupError(
            f"Cannot listen{purpose} on {host}:{port} ({exc.strerror}): stop what uses the port or choose "
            f"another [{section}] port."
        ) from None


ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class HttpsServer:
    """uvicorn serving one ASGI app on our reloading TLS context until SIGTERM/SIGINT."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tls: ReloadingServerContext | None = None
        self.server: _Server | None = None
        self._protocol = build_protocol(settings.server)

    def _certificate_paths(self) -> tuple[Path, Path]:
        """The checks that need no file: credentials configured, certificate files named."""
        s = self.settings
        if not s.auth.configured:
            raise StartupError(
                "No sender credentials are configured: set [auth] bearer_tokens or add an "
                "[[auth.basic]] entry (`tcwebhook init` writes both)."
            )
        if s.tls.certfile is None or s.tls.keyfile is None:
            raise StartupError(
                "serve needs [tls] certfile and keyfile (a CA-issued certificate chain and its key); "
                "for a local trial use `tcwebhook dev`, which makes its own development CA."
            )
        return s.tls.certfile, s.tls.keyfile

    def check(self) -> CertReport:
        """The certificate checks of ``load``, without building the live context."""
        s = self.settings
        certfile, keyfile = self._certificate_paths()
        return check_certificate_setup(
            certfile,
            keyfile,
            s.tls.trust_store,
            s.server.public_hostname,
            expiry_warning_days=s.tls.expiry_warning_days,
        )

    def load(self) -> None:
        """Build the TLS context; runs the checks of ``check`` and logs the certificate and its warnings."""
        s = self.settings
        certfile, keyfile = self._certificate_paths()
        self.tls = ReloadingServerContext(
            certfile,
            keyfile,
            trust_store=s.tls.trust_store,
            public_hostname=s.server.public_hostname,
            expiry_warning_days=s.tls.expiry_warning_days,
        )
        groups = accepted_groups(self.tls.context)
        if groups != KEY_EXCHANGE_GROUPS:
            log.warning(
                "tls.groups_fallback",
                groups=",".join(groups),
                wanted=",".join(KEY_EXCHANGE_GROUPS),
                hint=f"run under OPENSSL_CONF={OPENSSL_CONFIG}, or add its Groups line to the file OPENSSL_CONF names",
            )

    def _config(self, app: ASGIApp) -> uvicorn.Config:
        assert self.tls is not None
        s = self.settings
        config = uvicorn.Config(
            app,
            host=s.server.host,
            port=s.server.port,
            loop="none",
            http=self._protocol,
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=int(max(1, s.server.keep_alive_timeout)),
            timeout_graceful_shutdown=int(max(1, s.server.shutdown_timeout)),
            # max_connections is the gate's (before TLS, after closing idle connections): uvicorn's
            # own count would still include idle connections that are closing to make room.
            limit_concurrency=None,
        )
        config.load()
        config.ssl = self.tls.context
        return config

    async def serve(
        self,
        app: ASGIApp,
        on_ready: Callable[[HttpsServer], Awaitable[None] | None] | None = None,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """Serve ``app`` until a signal stops uvicorn; ``load`` first.

        ``registry``: where the connection metrics go (the app's ``/metrics`` registry).
        """
        if self.tls is None:
            self.load()
        assert self.tls is not None
        self.server = _Server(self._config(app))
        gate = Gate(self.settings.server, ConnectionMetrics(registry))
        reload = asyncio.create_task(self.tls.keep_reloading(self.settings.tls.reload_interval))
        try:
            tune_gc()
            tune_threads()
            sock = self._bind()
            # No sockets for uvicorn: our listener accepts, admits and starts TLS itself.
            serve = asyncio.create_task(self.server.serve(sockets=[]))
            while not self.server.started and not serve.done():  # noqa: ASYNC110 - uvicorn exposes a flag only
                await asyncio.sleep(0.02)
            if serve.done():
                serve.result()
            self._listen(sock, gate)
            log.info(
                "listening",
                host=self.settings.server.host,
                port=self.bound_port,
                orders=self.settings.routes.orders,
                shipments=self.settings.routes.shipments,
            )
            if on_ready is not None:
                maybe = on_ready(self)
                if maybe is not None:
                    await maybe
            await serve
        finally:
            reload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reload

    def _bind(self) -> socket.socket:
        return bind_listener(self.settings.server.host, self.settings.server.port, backlog=2048, section="server")

    def _listen(self, sock: socket.socket, gate: Gate) -> None:
        assert self.server is not None and self.tls is not None
        factory = self._protocol.factory(self.server.config, self.server.server_state)
        listener = Listener(sock, gate, self.tls.context, factory, self.settings.server.tls_handshake_timeout)
        listener.start()
        self.server.listener = listener

    @property
    def bound_port(self) -> int:
        if self.server is None or self.server.listener is None:
            return self.settings.server.port
        return int(self.server.listener.sock.getsockname()[1])


def run(main: Coroutine[Any, Any, None], *, handshake_timeout: float) -> None:
    """Run ``main`` on a uvloop loop whose TLS servers time out unfinished handshakes."""

    def loop_factory() -> uvloop.Loop:
        return _HandshakeTimeoutLoop(handshake_timeout)

    uvloop.run(main, loop_factory=loop_factory)


class _HandshakeTimeoutLoop(uvloop.Loop):
    """A uvloop loop whose TLS servers drop clients that never finish the handshake.

    uvicorn creates the listener without ``ssl_handshake_timeout``, so a client that connects
    and sends nothing would hold a connection for asyncio's default 60 s.
    """

    def __init__(self, handshake_timeout: float) -> None:
        super().__init__()
        self._handshake_timeout = handshake_timeout

    async def create_server(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", self._handshake_timeout)
        return await super().create_server(*args, **kwargs)
