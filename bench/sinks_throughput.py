"""Delivery throughput of the sinks: events/s with a given concurrency.

Files sink into a temporary folder (every write fsync'd); http sink against a loopback HTTP
and HTTPS server running in a separate process (so it does not share the client's CPU time
slice); python sink with a no-op sync and async handler.

    python bench/sinks_throughput.py [--events 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import structlog

from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox.base import StoredEvent
from tcwebhook.sinks.base import Sink
from tcwebhook.sinks.event import Event
from tcwebhook.sinks.files import FilesSink
from tcwebhook.sinks.http import HttpSink
from tcwebhook.sinks.python import PythonSink

BODY = (
    b'{"eventName":"OrderLinesAcceptedBySupplier","orderEvent":{"orderId":"3b0c2a0e",'
    b'"buyerOrder":{"purchaseOrderNumber":"PO-2025-000123"},"lines":['
    + b",".join(b'{"id":"l%d","buyerLine":{"position":"%04d"}}' % (i, i) for i in range(20))
    + b"]}}"
)


def events(n: int) -> list[StoredEvent]:
    base = StoredEvent(
        seq=0,
        event_id="",
        received_at=datetime.now(UTC),
        kind=EventKind.ORDER,
        event_name="OrderLinesAcceptedBySupplier",
        dedupe_key="",
        content_type="application/json",
        body=BODY,
        key=None,
        order_id="3b0c2a0e",
        shipment_id=None,
        purchase_order_number="PO-2025-000123",
        shipment_number=None,
        message_id=None,
        last_updated_at=None,
        headers={},
        status="pending",
    )
    return [replace(base, seq=i, event_id=f"ev{i:08d}", key=f"order:{i % 97}") for i in range(n)]


async def measure(sink: Sink, batch: list[StoredEvent], concurrency: int) -> float:
    queue: asyncio.Queue[StoredEvent] = asyncio.Queue()
    for event in batch:
        queue.put_nowait(event)

    async def worker() -> None:
        while not queue.empty():
            await sink.deliver(queue.get_nowait())

    await sink.deliver(batch[0])  # warm up: connection, TLS handshake, thread pool
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await sink.close()
    return len(batch) / elapsed


# -- a minimal keep-alive HTTP/1.1 server, run in a child process ------------------------------


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def _serve(cert: str | None, key: str | None) -> None:
    ctx = None
    if cert and key:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
    server = await asyncio.start_server(_handle, "127.0.0.1", 0, ssl=ctx, backlog=256)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def start_server(cert: Path | None = None, key: Path | None = None) -> tuple[subprocess.Popen[str], int]:
    args = [sys.executable, __file__, "--serve"]
    if cert and key:
        args += ["--cert", str(cert), "--key", str(key)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, port


# -- the runs ----------------------------------------------------------------------------------


async def run(n: int, concurrency: int) -> list[tuple[str, float]]:
    import trustme

    results: list[tuple[str, float]] = []
    batch = events(n)

    async def record(label: str, make: Callable[[], Awaitable[float]]) -> None:
        rate = await make()
        results.append((label, rate))
        print(f"{label:<44} {rate:>10,.0f} events/s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        await record("files (fsync per event)", lambda: measure(FilesSink("f", folder / "a"), batch, concurrency))
        await record(
            "files, subfolders per kind",
            lambda: measure(FilesSink("f", folder / "b", subfolders=True), batch, concurrency),
        )

        proc, port = start_server()
        try:
            await record(
                "http, loopback, keep-alive",
                lambda: measure(HttpSink("h", f"http://127.0.0.1:{port}/in"), batch, concurrency),
            )
            await record(
                "http, loopback, bearer auth",
                lambda: measure(
                    HttpSink("h", f"http://127.0.0.1:{port}/in", bearer_token="t" * 32), batch, concurrency
                ),
            )
        finally:
            proc.terminate()
            proc.wait(5)

        ca = trustme.CA()
        leaf = ca.issue_cert("localhost")
        cert, key, ca_pem = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
        leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        ca.cert_pem.write_to_path(str(ca_pem))
        proc, port = start_server(cert, key)
        try:
            await record(
                "https, loopback, keep-alive, verified",
                lambda: measure(HttpSink("h", f"https://localhost:{port}/in", ca_bundle=ca_pem), batch, concurrency),
            )
        finally:
            proc.terminate()
            proc.wait(5)

    def noop(event: Event) -> None:
        return None

    async def anoop(event: Event) -> None:
        return None

    await record("python, sync handler (thread pool)", lambda: measure(PythonSink("p", noop), batch, concurrency))
    await record("python, async handler", lambda: measure(PythonSink("p", anoop), batch, concurrency))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.cert, args.key))
        return
    # Per-event debug lines would measure the console, not the sinks.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(f"{args.events} events, concurrency {args.concurrency}")
    asyncio.run(run(args.events, args.concurrency))


if __name__ == "__main__":
    main()
