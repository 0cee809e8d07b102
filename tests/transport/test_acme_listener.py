"""The ACME http-01 listener on real loopback sockets: answers, caps and timeouts.

Port 80 is open to the whole internet while a certificate is ordered or renewed, so its listener
admits connections as the webhook listener does (a total and a per-address cap), and gives a
client a few seconds for its one small request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from tests.support.polling import eventually_async

from tcwebhook.config import ServerSettings
from tcwebhook.transport.acme import Challenges, http01_listener

pytestmark = pytest.mark.anyio

PREFIX = "/.well-known/acme-challenge/"


@contextlib.asynccontextmanager
async def listening(server: ServerSettings, table: Challenges | None = None) -> AsyncIterator[int]:
    async with http01_listener("127.0.0.1", 0, table or Challenges(), server) as listener:
        yield int(listener.sockets[0].getsockname()[1])


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def get(port: int, target: str) -> bytes:
    reader, writer = await connect(port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nhost: example.com\r\n\r\n".encode())
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            return await reader.read(1) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def close(*writers: asyncio.StreamWriter) -> None:
    for writer in writers:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


class TestAnswers:
    """Only a published token is answered; everything else is 404."""

    async def test_published_token_and_404(self) -> None:
        table = Challenges()
        table.http01["tok-1"] = "tok-1.thumbprint"
        async with listening(ServerSettings(), table) as port:
            answer = await get(port, PREFIX + "tok-1")
            other = await get(port, PREFIX + "tok-2")
            outside = await get(port, "/tradecloud/orders")
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"tok-1.thumbprint")
        assert other.startswith(b"HTTP/1.1 404 ")
        assert outside.startswith(b"HTTP/1.1 404 ")


class TestAdmission:
    """Connections over the caps are closed at once; a silent client is closed after a few seconds."""

    async def test_per_address_cap(self) -> None:
        table = Challenges()
        table.http01["tok"] = "tok.thumb"
        async with listening(ServerSettings(max_connections_per_ip=2), table) as port:
            held = [await connect(port) for _ in range(2)]
            reader, writer = await connect(port)
            assert await closed_by_server(reader, within=2)  # not held until the request timeout
            await close(writer)
            for r, _ in held:
                assert not await closed_by_server(r, within=0.2)
            await close(*(w for _, w in held))
            # The slots are given back: the next client is answered.
            async def answered() -> bytes:  # once the server has seen them go
                return await get(port, PREFIX + "tok")

            assert (await eventually_async(answered, 5)).startswith(b"HTTP/1.1 200 ")

    async def test_total_cap(self) -> None:
        async with listening(ServerSettings(max_connections=3, max_connections_per_ip=0)) as port:
            held = [await connect(port) for _ in range(3)]
            reader, writer = await connect(port)
            assert await closed_by_server(reader, within=2)
            await close(writer, *(w for _, w in held))

    async def test_silent_client_closed(self) -> None:
        async with listening(ServerSettings()) as port:
            reader, writer = await connect(port)
            started = time.monotonic()
            assert await closed_by_server(reader, within=30)
            took = time.monotonic() - started
            await close(writer)
        assert took < 8  # a few seconds (the webhook request timeout is 30 s by default)
