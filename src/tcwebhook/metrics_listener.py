"""``/metrics`` and ``/healthz`` over plain HTTP for a process without the webhook listener.

``tcwebhook worker`` delivers, so the delivery metrics (latency, backlog, dead letters) exist
where it runs; ``serve`` has them on its webhook port already. Prometheus scrapes it on a
private network or loopback ([worker] metrics_host, 127.0.0.1 by default): it answers these two
paths and nothing else, so it holds no secret and accepts no input.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import h11
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from tcwebhook.errors import StartupError, StoreError

log = structlog.get_logger(__name__)

_REQUEST_TIMEOUT = 10.0


@contextlib.asynccontextmanager
async def metrics_listener(
    host: str,
    port: int,
    registry: CollectorRegistry,
    *,
    refresh: Callable[[], Awaitable[None]],
    ping: Callable[[], Awaitable[None]],
) -> AsyncIterator[int]:
    """Serve while the context lasts; yields the bound port (the real one when ``port`` is 0)."""

    async def answer(target: str) -> tuple[int, bytes, str]:
        if target == "/metrics":
            await refresh()
            return 200, generate_latest(registry), CONTENT_TYPE_LATEST
        if target == "/healthz":
            try:
                await asyncio.wait_for(ping(), _REQUEST_TIMEOUT / 2)
            except (StoreError, TimeoutError):
                return 503, b'{"status":"unavailable","store":"down"}\n', "application/json"
            return 200, b'{"status":"ok","store":"up"}\n', "application/json"
        return 404, b"not found\n", "text/plain"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=8192)
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT):
                event = conn.next_event()
                while event is h11.NEED_DATA:
                    data = await reader.read(8192)
                    if not data:
                        return
                    conn.receive_data(data)
                    event = conn.next_event()
                if not isinstance(event, h11.Request):
                    return
                if event.method not in (b"GET", b"HEAD"):
                    status, body, kind = 405, b"method not allowed\n", "text/plain"
                else:
                    status, body, kind = await answer(event.target.decode("ascii", "replace").split("?", 1)[0])
                headers = [("content-type", kind), ("content-length", str(len(body))), ("connection", "close")]
                writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
                if event.method != b"HEAD":
                    writer.write(conn.send(h11.Data(data=body)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
                await writer.drain()
        except (TimeoutError, h11.RemoteProtocolError, h11.LocalProtocolError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=64)
    except OSError as exc:
        raise StartupError(
            f"Cannot serve /metrics on {host}:{port} ({exc.strerror}): stop what uses the port or choose "
            "another [worker] metrics_port."
        ) from None
    server = await asyncio.start_server(handle, sock=sock)
    bound = int(sock.getsockname()[1])
    log.info("metrics_listening", host=host, port=bound)
    try:
        yield bound
    finally:
        server.close()
        await server.wait_closed()
