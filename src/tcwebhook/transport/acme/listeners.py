"""The challenge listeners: plain HTTP for http-01, and the webhook port before the first certificate."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

import h11
import structlog

from tcwebhook.config import ServerSettings
from tcwebhook.errors import StartupError
from tcwebhook.transport.acme.challenges import ACME_TLS_ALPN, Challenges
from tcwebhook.transport.gate import ConnectionMetrics, Gate

log = structlog.get_logger("tcwebhook.transport.acme")

_HTTP01_PREFIX = "/.well-known/acme-challenge/"
# One small GET and its answer: a validation needs well under a second, so a client is given a
# few seconds in all (reading its request and writing the answer), not the webhook timeouts.
HTTP01_TIMEOUT = 5.0


@contextlib.asynccontextmanager
async def http01_listener(
    host: str, port: int, table: Challenges, server: ServerSettings | None = None
) -> AsyncIterator[asyncio.Server]:
    """Plain HTTP that answers ``/.well-known/acme-challenge/<token>`` and nothing else.

    Connections are admitted as on the webhook port: at most ``max_connections`` at once and
    ``max_connections_per_ip`` per address, others closed at once. ``allow_from`` does not apply:
    the CA validates from addresses of its own, and this port never serves webhooks.
    """
    gate = Gate(server or ServerSettings(), ConnectionMetrics())

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        admission = gate.admit((str(peer[0]), int(peer[1])), check_allow=False) if peer else None
        if admission is None:
            writer.transport.abort()
            return
        try:
            async with asyncio.timeout(HTTP01_TIMEOUT):
                await _answer(reader, writer, table)
                writer.close()
                await writer.wait_closed()  # the answer flushed, within the same few seconds
        except (TimeoutError, h11.RemoteProtocolError, ConnectionError):
            writer.transport.abort()  # a client that neither asks nor reads keeps no slot
        finally:
            writer.close()
            admission.release()

    try:
        listener = await asyncio.start_server(handle, host, port)
    except OSError as exc:
        raise StartupError(
            f"Cannot listen for ACME http-01 challenges on {host}:{port} ({exc.strerror}): free the port or "
            "set [server] http_port (the CA connects to port 80, so forward it there)."
        ) from None
    log.info("acme.http01_listening", host=host, port=port)
    try:
        yield listener
    finally:
        listener.close()
        await listener.wait_closed()


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, table: Challenges) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=8192)
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            break
        data = await reader.read(8192)
        conn.receive_data(data)
        if not data:
            return
    if not isinstance(event, h11.Request):
        return
    target = event.target.decode("ascii", "replace")
    answer = table.http01_answer(target[len(_HTTP01_PREFIX):]) if target.startswith(_HTTP01_PREFIX) else None
    if event.method != b"GET" or answer is None:
        status, body = 404, b"not found\n"
    else:
        status, body = 200, answer.encode()
    headers = [("content-type", "text/plain"), ("content-length", str(len(body))), ("connection", "close")]
    writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
    writer.write(conn.send(h11.Data(data=body)) or b"")
    writer.write(conn.send(h11.EndOfMessage()) or b"")
    await writer.drain()


@contextlib.asynccontextmanager
async def tls_alpn01_listener(host: str, port: int, table: Challenges, hostname: str) -> AsyncIterator[None]:
    """Before the first certificate: the webhook port answers only tls-alpn-01 handshakes."""
    base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    base.set_alpn_protocols([ACME_TLS_ALPN])

    def pick(ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> int | None:
        ctx = table.context_for(server_name or hostname)
        if ctx is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        ssl_object.context = ctx
        return None

    base.sni_callback = pick

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # the validation is the handshake itself

    try:
        server = await asyncio.start_server(handle, host, port, ssl=base, ssl_handshake_timeout=10)
    except OSError as exc:
        raise StartupError(
            f"Cannot listen on {host}:{port} for the ACME tls-alpn-01 challenge ({exc.strerror}): stop what "
            "uses the port."
        ) from None
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
