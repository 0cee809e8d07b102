"""A small HTTP/1.1-over-TLS load generator: closed loop, one request in flight per connection.

Why a second generator beside h2load: h2load posts one fixed body, so every request after the
first is a duplicate for a receiver that dedupes on ``meta.messageId``. This one gives each request
a unique messageId, which is what makes the receiver store (and fsync) every event. The benchmark
runs both against the same targets, so h2load's figures calibrate this one.

Run as ``python -m bench.loadgen --url https://127.0.0.1:PORT/path ...``; prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

MAX_RESPONSE_BYTES = 1 << 20


@dataclass
class LoadResult:
    """What one load run measured (latencies in milliseconds)."""

    concurrency: int
    duration: float
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    keep_alive: bool = True


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


class _Recorder:
    """Counts responses that finished inside the measurement window."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.errors = 0
        self.error_samples: list[str] = []

    def done(self, sent_at: float, status: int) -> None:
        now = time.perf_counter()
        if self.start <= sent_at and now <= self.end:
            self.latencies.append((now - sent_at) * 1000.0)
            self.statuses[str(status)] += 1

    def error(self, what: str) -> None:
        now = time.perf_counter()
        if self.start <= now <= self.end:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(what)


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the next request as soon as the previous one is answered."""

    def __init__(
        self,
        next_request: Callable[[], bytes],
        recorder: _Recorder,
        closed: asyncio.Future[str],
        pace: Callable[[], float] | None = None,
    ) -> None:
        self.next_request = next_request
        self.pace = pace
        self.recorder = recorder
        self.closed = closed
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is not an asyncio.Transport subclass, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        if time.perf_counter() >= self.recorder.end:
            self.transport.close()
            return
        delay = self.pace() if self.pace else 0.0
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._write)
        else:
            self._write()

    def _write(self) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return
        self.sent_at = time.perf_counter()
        self.transport.write(self.next_request())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(self.buffer) > MAX_RESPONSE_BYTES:
                    self._fail("response headers too large")
                return
            head = bytes(self.buffer[:head_end]).lower()
            try:
                status = int(head[9:12])
            except ValueError:
                self._fail(f"bad status line {head[:40]!r}")
                return
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    length = int(value.strip())
                elif name == b"connection" and b"close" in value:
                    close = True
                elif name == b"transfer-encoding":
                    self._fail("chunked responses are not supported")
                    return
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            self.recorder.done(self.sent_at, status)
            if close:
                assert self.transport is not None
                self.transport.close()
                return
            self._send()

    def _fail(self, what: str) -> None:
        self.recorder.error(what)
        assert self.transport is not None
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(repr(exc) if exc else "closed")


def build_request(host: str, path: str, headers: list[tuple[str, str]], body: bytes, close: bool) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def run_load(
    *,
    url: str,
    make_body: Callable[[int], bytes],
    headers: list[tuple[str, str]],
    ssl_context: ssl.SSLContext,
    concurrency: int,
    duration: float,
    warmup: float,
    keep_alive: bool = True,
    serial_base: int = 0,
    rate: float | None = None,
) -> LoadResult:
    """Drive ``url`` with ``concurrency`` connections for ``warmup + duration`` seconds; with
    ``rate``, requests are spaced to that many per second in all (at most, when the server is slower)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 443
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    serial = serial_base

    def next_request() -> bytes:
        nonlocal serial
        serial += 1
        return build_request(host, path, headers, make_body(serial), close=not keep_alive)

    loop = asyncio.get_running_loop()
    start = time.perf_counter() + warmup
    recorder = _Recorder(start, start + duration)
    slot = time.perf_counter()

    def pace() -> float:
        """Seconds until the next request's slot; a slow stretch is caught up by at most 0.1 s."""
        nonlocal slot
        assert rate is not None
        now = time.perf_counter()
        slot = max(slot + 1.0 / rate, now - 0.1)
        return slot - now

    async def worker() -> None:
        while time.perf_counter() < recorder.end:
            closed: asyncio.Future[str] = loop.create_future()
            try:
                await loop.create_connection(
                    lambda: _Connection(next_request, recorder, closed, pace if rate else None),  # noqa: B023
                    host,
                    port,
                    ssl=ssl_context,
                    server_hostname="localhost",
                )
            except (OSError, ssl.SSLError) as exc:
                recorder.error(repr(exc))
                await asyncio.sleep(0.05)
                continue
            reason = await closed
            if keep_alive and time.perf_counter() < recorder.end:
                recorder.error(f"connection closed early: {reason}")

    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(concurrency))), timeout=warmup + duration + 30
    )
    lat = sorted(recorder.latencies)
    return LoadResult(
        concurrency=concurrency,
        duration=duration,
        requests=len(lat),
        rps=round(len(lat) / duration, 1),
        p50_ms=round(percentile(lat, 0.50), 3),
        p90_ms=round(percentile(lat, 0.90), 3),
        p99_ms=round(percentile(lat, 0.99), 3),
        max_ms=round(lat[-1], 3) if lat else 0.0,
        statuses=dict(recorder.statuses),
        errors=recorder.errors,
        error_samples=recorder.error_samples,
        keep_alive=keep_alive,
    )


def _body_maker(body_file: Path, unique: bool) -> Callable[[int], bytes]:
    raw = body_file.read_bytes()
    if not unique:
        return lambda _serial: raw
    from bench.body import BodyTemplate

    meta = json.loads(body_file.with_suffix(".ids.json").read_text())
    template = BodyTemplate(raw, meta["message_id"].encode(), meta["order_id"].encode())
    return template.variant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", type=Path, required=True, help="body file (with BODY.ids.json for --unique)")
    parser.add_argument("--unique", action="store_true", help="a fresh messageId in every request")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--no-keep-alive", action="store_true", help="one TLS handshake per request")
    parser.add_argument("--serial-base", type=int, default=0, help="first messageId serial (runs must not overlap)")
    parser.add_argument("--rate", type=float, default=None, help="requests per second in all (default: as fast as "
                        "the server answers)")
    args = parser.parse_args(argv)
    headers = [tuple(h.split(":", 1)) for h in args.header]
    ctx = ssl.create_default_context(cafile=str(args.ca))
    ctx.set_alpn_protocols(["http/1.1"])
    coro = run_load(
        url=args.url,
        make_body=_body_maker(args.body, args.unique),
        headers=[(k.strip(), v.strip()) for k, v in headers],
        ssl_context=ctx,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        keep_alive=not args.no_keep_alive,
        serial_base=args.serial_base,
        rate=args.rate,
    )
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        result = asyncio.run(coro)
    json.dump(asdict(result), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

