"""Admission of connections before TLS: allow-list, PROXY protocol, per-address and total caps.

uvicorn's listener hands every TCP connection straight to TLS, so whoever connects costs a
handshake and a connection slot before anything can be said about them. Here the server accepts
connections itself and decides on the client's address first: a connection from outside
``[server] allow_from``, over ``max_connections_per_ip``, or over ``max_connections`` (once idle
keep-alive connections have been closed to make room) is closed before the handshake and
counted in ``tcwebhook_connections_refused_total``. Behind a TCP load balancer the client's
address comes from a PROXY protocol header, read (and only the header) before TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from tcwebhook.config import ServerSettings
from tcwebhook.transport.addresses import (
    PROXY_MAX,
    ProxyHeaderError,
    client_address,
    contains,
    parse_networks,
    parse_proxy_header,
)

log = structlog.get_logger(__name__)

REFUSED_REASONS = ("allow_from", "per_ip", "max_connections", "proxy_protocol")
CLOSED_REASONS = ("idle_for_capacity", "request_timeout", "head_too_large")
# Above this share of max_connections, idle keep-alive connections are closed to make room.
SOFT_CAP = 0.9
# After our close_notify, how long a client may take to answer with its own before the socket is
# dropped. asyncio's default is 30 s: a client that never reads would hold its slot that long.
TLS_SHUTDOWN_TIMEOUT = 2.0
ACCEPT_BATCH = 64  # connections accepted per readiness callback, so one burst cannot starve the loop
# Out of descriptors, the listening socket stays readable: accepting again at once would spin the
# loop at full CPU. Accepting pauses instead, from this long up to ACCEPT_PAUSE_MAX while it lasts.
ACCEPT_PAUSE = 0.05
ACCEPT_PAUSE_MAX = 1.0
_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class ConnectionMetrics:
    """Connection counters on the receiver's registry (exported by ``/metrics``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry()
        refused = Counter(
            "tcwebhook_connections_refused_total",
            "Connections closed before the TLS handshake, by reason",
            ["reason"],
            registry=registry,
        )
        closed = Counter(
            "tcwebhook_connections_closed_total",
            "Open connections the server closed to protect itself, by reason",
            ["reason"],
            registry=registry,
        )
        self.open = Gauge("tcwebhook_connections_open", "Admitted connections now open", registry=registry)
        self.accept_paused = Counter(
            "tcwebhook_accept_paused_total",
            "Times accepting paused because the process was out of file descriptors (or buffers)",
            registry=registry,
        )
        self.refused = {reason: refused.labels(reason) for reason in REFUSED_REASONS}
        self.closed = {reason: closed.labels(reason) for reason in CLOSED_REASONS}


class Closable(Protocol):
    """An open connection the gate may close to make room (the HTTP protocol)."""

    def close_idle(self) -> None: ...


class Admission:
    """One admitted connection's place in the counts; released once, whoever notices the end first."""

    __slots__ = ("_gate", "client", "evicted", "health_only", "released")

    def __init__(self, gate: Gate, client: tuple[str, int]) -> None:
        self._gate = gate
        self.client = client
        self.released = False
        self.evicted = False
        # A connection whose sender the allow-list could not check (PROXY LOCAL/UNKNOWN): only
        # the balancer's health check may use it.
        self.health_only = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._gate._release(self)

    def idle(self, connection: Closable) -> None:
        """The connection waits for its next request and may be closed to make room."""
        self._gate._idle[connection] = self

    def busy(self, connection: Closable) -> None:
        self._gate._idle.pop(connection, None)

    def closed(self, reason: str) -> None:
        self._gate.metrics.closed[reason].inc()


class Gate:
    """Who may connect, and how many at once."""

    def __init__(self, server: ServerSettings, metrics: ConnectionMetrics) -> None:
        self.metrics = metrics
        self._allow = parse_networks(server.allow_from, "allow_from", presets=True)
        self._proxies = parse_networks(server.trusted_proxies, "trusted_proxies", presets=False)
        self.proxy_protocol = server.proxy_protocol
        self._per_ip = server.max_connections_per_ip
        self._max = server.max_connections
        self._soft = int(self._max * SOFT_CAP) if self._max else None
        self._by_address: dict[str, int] = {}
        self._idle: dict[Closable, Admission] = {}  # insertion order: the longest idle first
        self._evicting = 0  # idle connections closed to make room, not yet gone
        self.total = 0
        metrics.open.set_function(lambda: self.total)

    @property
    def restricted(self) -> bool:
        """An allow-list is set: who connects matters."""
        return bool(self._allow)

    def trusted_proxy(self, host: str) -> bool:
        return contains(self._proxies, client_address(host))

    def admit(self, client: tuple[str, int], *, check_allow: bool = True) -> Admission | None:
        """Count the connection in, or count the refusal and return None."""
        host = client[0]
        refused = None
        if check_allow and self._allow and not contains(self._allow, client_address(host)):
            refused = "allow_from"
        elif self._per_ip and self._by_address.get(host, 0) >= self._per_ip:
            refused = "per_ip"
        elif self._max is not None:
            self._make_room()
            if self.total - self._evicting >= self._max:
                refused = "max_connections"
        if refused is not None:
            self._refuse(refused, host)
            return None
        self.total += 1
        self._by_address[host] = self._by_address.get(host, 0) + 1
        return Admission(self, client)

    def refuse_proxy(self, host: str, why: str) -> None:
        self._refuse("proxy_protocol", host, why)

    def _refuse(self, reason: str, host: str, why: str = "") -> None:
        self.metrics.refused[reason].inc()
        log.debug("connection_refused", reason=reason, peer=host, detail=why or None)

    def _make_room(self) -> None:
        assert self._soft is not None
        while self._idle and self.total - self._evicting >= self._soft:
            connection, admission = next(iter(self._idle.items()))
            del self._idle[connection]
            admission.evicted = True
            self._evicting += 1
            self.metrics.closed["idle_for_capacity"].inc()
            connection.close_idle()

    def _release(self, admission: Admission) -> None:
        self.total -= 1
        if admission.evicted:
            self._evicting -= 1
        host = admission.client[0]
        left = self._by_address.get(host, 1) - 1
        if left > 0:
            self._by_address[host] = left
        else:
            self._by_address.pop(host, None)


class Listener:
    """Accepts connections on ``sock``, admits them through ``gate`` and starts TLS on the admitted."""

    def __init__(
        self,
        sock: socket.socket,
        gate: Gate,
        ssl_context: ssl.SSLContext,
        protocol_factory: Callable[[Admission], asyncio.Protocol],
        handshake_timeout: float,
    ) -> None:
        self.sock = sock
        self.gate = gate
        self._ssl = ssl_context
        self._factory = protocol_factory
        self._handshake_timeout = handshake_timeout
        self._pending: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pause = ACCEPT_PAUSE
        self._paused: asyncio.TimerHandle | None = None
        self._exhausted = 0  # pauses in the current episode of descriptor exhaustion

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        self._loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting; connections still in their handshake or PROXY header are dropped."""
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        for task in self._pending:
            task.cancel()
        self.sock.close()

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    self._pause_accepting(exc)
                    return
                continue  # a connection that failed before we got it (ECONNABORTED)
            if self._exhausted:
                log.info("accept_resumed", pauses=self._exhausted)
                self._exhausted, self._pause = 0, ACCEPT_PAUSE
            conn.setblocking(False)
            client = (str(address[0]), int(address[1]))
            if self.gate.proxy_protocol:
                if not self.gate.trusted_proxy(client[0]):
                    self.gate.refuse_proxy(client[0], "not a trusted proxy")
                    conn.close()
                    continue
                self._spawn(self._proxied(conn, client))
                continue
            admission = self.gate.admit(client)
            if admission is None:
                conn.close()
                continue
            self._spawn(self._handshake(conn, admission))

    def _pause_accepting(self, exc: OSError) -> None:
        """Out of descriptors or buffers: the backlog keeps the waiting clients until some are freed."""
        if self._loop is None:
            return
        self.gate.metrics.accept_paused.inc()
        if not self._exhausted:  # one line per episode, not one per attempt
            log.warning(
                "accept_paused",
                error=exc.strerror,
                hint="out of file descriptors: raise the open-file limit or lower [server] max_connections",
            )
        self._exhausted += 1
        self._loop.remove_reader(self.sock.fileno())
        self._paused = self._loop.call_later(self._pause, self._resume_accepting)
        self._pause = min(self._pause * 2, ACCEPT_PAUSE_MAX)

    def _resume_accepting(self) -> None:
        self._paused = None
        if self._loop is not None:
            self._loop.add_reader(self.sock.fileno(), self._accept)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _proxied(self, conn: socket.socket, proxy: tuple[str, int]) -> None:
        try:
            async with asyncio.timeout(self._handshake_timeout):
                header = await _read_proxy_header(conn)
        except (ProxyHeaderError, TimeoutError, OSError) as exc:
            self.gate.refuse_proxy(proxy[0], str(exc) or type(exc).__name__)
            conn.close()
            return
        except asyncio.CancelledError:
            conn.close()
            raise
        # LOCAL, UNKNOWN and unspecified headers name no sender: the balancer's own connections
        # (health checks). With an allow-list they may ask /healthz and nothing else, or any
        # client could get past the allow-list through a balancer that sends them.
        admission = self.gate.admit(header.client or proxy, check_allow=header.client is not None)
        if admission is None:
            conn.close()
            return
        admission.health_only = header.client is None and self.gate.restricted
        await self._handshake(conn, admission)

    async def _handshake(self, conn: socket.socket, admission: Admission) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                lambda: self._factory(admission),
                conn,
                ssl=self._ssl,
                ssl_handshake_timeout=self._handshake_timeout,
                ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT,
            )
        except asyncio.CancelledError:
            admission.release()
            raise
        except Exception as exc:
            # The transport closed the socket; the protocol never saw connection_made.
            admission.release()
            log.debug("handshake_failed", peer=admission.client[0], error=repr(exc))


async def _read_proxy_header(conn: socket.socket) -> Any:
    """Read exactly the PROXY header off ``conn``, leaving the TLS ClientHello behind it unread."""
    loop = asyncio.get_running_loop()
    got = b""
    while True:
        await _readable(loop, conn)
        try:
            peek = conn.recv(PROXY_MAX - len(got), socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            continue
        if not peek:
            raise ProxyHeaderError("closed before a PROXY header")
        header = parse_proxy_header(got + peek)
        if header is None:  # every byte so far is header: take them, wait for the rest
            got += conn.recv(len(peek))
            if len(got) >= PROXY_MAX:
                raise ProxyHeaderError("PROXY header too long")
            continue
        need = header.length - len(got)
        while need > 0:  # already in the socket buffer: it was just peeked
            chunk = conn.recv(need)
            if not chunk:
                raise ProxyHeaderError("closed inside the PROXY header")
            need -= len(chunk)
        return header


async def _readable(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), wake)
    try:
        await ready
    finally:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(conn.fileno())
