"""The receiver's per-request cost without HTTP and TLS: the real app, inbox and logging in-process.

Drives ``Receiver`` with ASGI messages from ``concurrency`` tasks on uvloop, against a real SQLite
inbox (group commit, fsync) in a temporary folder, with JSON logging to a file and the server's
garbage-collector settings, and prints the CPU time per request of the whole process and of each
thread (user and system, from /proc), the collections run, each piece of the hot path on its own
and the whole app with storage stubbed. Use it to compare two versions of the code back to back;
``--profile`` adds a cProfile listing (of the event-loop thread only).

``--no-book`` stores the events without their order-book write (as ``bench/orderbook.py``'s
``book=None`` variant), so two runs give the book's share of a stored request.

``--postgres`` stores in a throw-away PostgreSQL 15 cluster instead, and counts its processes' CPU too.

Run as ``python -m bench.hotpath [--unique|--duplicate] [--requests N] [--profile] [--default-gc] [--no-book]
[--postgres]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import os
import pstats
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any, cast

import psutil  # type: ignore[import-untyped]
import psycopg
import structlog
from bench.body import BodyTemplate, order_event_template
from bench.targets import thread_times
from tests.pgcluster import PgCluster, new_cluster

from tcwebhook.config import Settings
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.inbox.base import Inbox, NewEvent, StoreResult
from tcwebhook.inbox.ids import new_id
from tcwebhook.inbox.postgres import PostgresInbox
from tcwebhook.inbox.sqlite import SqliteInbox
from tcwebhook.logs import configure_logging
from tcwebhook.receiver.app import Receiver
from tcwebhook.transport.server import tune_gc

TOKEN = "hotpath-token-0123456789abcdef"  # noqa: S105 - a throwaway benchmark credential
PATH = "/tradecloud/orders"


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        auth={"bearer_tokens": [TOKEN]},
        logging={"level": "info", "format": "json"},
    )


def _scope(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "query_string": b"",
        "client": ("127.0.0.1", 40000),
        "headers": [
            (b"host", b"127.0.0.1:8443"),
            (b"user-agent", b"h2load nghttp2/1.52.0"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }


async def _drive(app: Receiver, bodies: Callable[[int], bytes], requests: int, concurrency: int) -> dict[str, int]:
    statuses: dict[str, int] = {}
    counter = iter(range(requests))

    async def worker() -> None:
        for serial in counter:
            body = bodies(serial)
            sent = False

            async def receive(body: bytes = body) -> MutableMapping[str, Any]:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    key = str(message["status"])
                    statuses[key] = statuses.get(key, 0) + 1

            sent = False
            await app(_scope(body), receive, send)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


class _InstantInbox:
    """Stores nothing and answers at once: what the receiver costs apart from storage."""

    async def store(self, event: NewEvent) -> StoreResult:
        return StoreResult(event_id="0192f0c4-7a35-7c4e-9d5f-3e2a1b0c9d8e", seq=1, duplicate=False)


async def _receiver_us(settings: Settings, body: bytes, repeat: int = 2000) -> float:
    """Microseconds per request of the whole ASGI app with storage stubbed out (best of 5)."""
    app = Receiver(settings, cast(Inbox, _InstantInbox()))
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        await _drive(app, lambda _serial: body, repeat, 1)
        best = min(best, (time.perf_counter() - started) / repeat)
    return round(best * 1e6, 2)


def _micro(template: BodyTemplate, repeat: int = 2000) -> dict[str, float]:
    """Microseconds per call of the hot path's pieces, each on its own (best of 5)."""
    body = template.variant(1)
    parsed = parse_webhook("orders", body, "application/json")
    log = structlog.get_logger("tcwebhook.request")
    pieces: dict[str, Callable[[], Any]] = {
        "parse_webhook": lambda: parse_webhook("orders", body, "application/json"),
        "NewEvent.from_parsed": lambda: NewEvent.from_parsed(
            parsed, content_type="application/json", body=body, headers={"host": "x"}
        ),
        "new_id": new_id,
        "log.info(request)": lambda: log.info(
            "request", method="POST", path=PATH, status=202, latency_ms=1.234, peer="127.0.0.1",
            event_id="0192f0c4-7a35-7c4e-9d5f-3e2a1b0c9d8e", kind="order", event_name="X", duplicate=False,
        ),
    }
    out: dict[str, float] = {}
    for name, fn in pieces.items():
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(repeat):
                fn()
            best = min(best, (time.perf_counter() - started) / repeat)
        out[name] = round(best * 1e6, 2)
    return out


def _thread_cpu() -> dict[str, tuple[float, float]]:
    """User and system CPU seconds of each live thread of this process, by name."""
    times = thread_times(os.getpid())
    return {t.name: times[t.native_id] for t in threading.enumerate() if t.native_id in times}


def _book_rows(query: Callable[[str], int]) -> str:
    return f"order book: {query('book_entries')} entries, {query('book_lines')} lines"


async def _main(args: argparse.Namespace, work: Path, cluster: PgCluster | None) -> None:
    settings = _settings(work / "data")
    server_cpu: Callable[[], float] = lambda: 0.0  # noqa: E731
    with (work / "requests.log").open("w") as stream:
        configure_logging(settings, stream=stream)
        inbox: SqliteInbox | PostgresInbox
        if cluster is None:
            inbox = SqliteInbox(work / "data" / "inbox.db", settings.store)
        else:
            url = cluster.url(cluster.create_database())
            inbox = PostgresInbox(url, settings.store)

            def server_cpu() -> float:  # every PostgreSQL process's CPU: the store's work is there
                total = 0.0
                for pid in cluster.server_pids():
                    with contextlib.suppress(psutil.NoSuchProcess):
                        times = psutil.Process(pid).cpu_times()
                        total += times.user + times.system
                return total

        await inbox.open()
        app = Receiver(settings, inbox)
        template = order_event_template()
        fixed = template.variant(0)

        def bodies(serial: int) -> bytes:
            return template.variant(serial + 1) if args.unique else fixed

        await _drive(app, bodies, 500, args.concurrency)  # warm-up (and the duplicate's first store)
        if not args.default_gc:
            tune_gc()
        base = 10_000_000
        profiler = cProfile.Profile() if args.profile else None
        threads_before = _thread_cpu()
        cpu, wall = time.process_time() + server_cpu(), time.perf_counter()
        if profiler:
            profiler.enable()
        gc_before = gc.get_stats()
        statuses = await _drive(app, lambda s: bodies(base + s), args.requests, args.concurrency)
        if profiler:
            profiler.disable()
        gc_after = gc.get_stats()
        threads_after = _thread_cpu()
        cpu, wall = time.process_time() + server_cpu() - cpu, time.perf_counter() - wall
        print(f"statuses {statuses}  commits {getattr(inbox, 'commits', '-')}")
        for gen, (a, b) in enumerate(zip(gc_before, gc_after, strict=True)):
            print(
                f"  gc gen{gen}: {b['collections'] - a['collections']} collections, "
                f"{b['collected'] - a['collected']} objects collected"
            )
        print(
            f"{args.requests} requests: {args.requests / wall:.0f} req/s wall, "
            f"{cpu / args.requests * 1e6:.1f} us CPU per request (all threads"
            f"{', and the PostgreSQL server' if cluster else ''})"
        )
        for name, (user, system) in threads_after.items():
            u0, s0 = threads_before.get(name, (0.0, 0.0))
            per_request = [(t - t0) / args.requests * 1e6 for t, t0 in ((user, u0), (system, s0))]
            print(f"  thread {name:22s} user {per_request[0]:7.1f} us, system {per_request[1]:7.1f} us per request")
        for name, us in _micro(template).items():
            print(f"  {name:24s} {us:8.2f} us")
        print(f"  {'receiver, store stubbed':24s} {await _receiver_us(settings, template.variant(7)):8.2f} us")
        await inbox.close()
    if cluster is None:
        with sqlite3.connect(work / "data" / "inbox.db") as conn:
            print(_book_rows(lambda t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])))  # noqa: S608
    else:
        with psycopg.connect(url) as pg:
            print(_book_rows(lambda t: int(pg.execute(f"SELECT count(*) FROM {t}").fetchone()[0])))  # type: ignore[index]  # noqa: S608
    if profiler:
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(args.top)
        print(buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--unique", dest="unique", action="store_true", default=True)
    mode.add_argument("--duplicate", dest="unique", action="store_false")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--default-gc", action="store_true", help="keep CPython's collector settings")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-book", action="store_true", help="store without the order-book write")
    parser.add_argument("--postgres", action="store_true", help="a throw-away PostgreSQL 15 store (fsync on)")
    args = parser.parse_args(argv)
    if args.no_book:
        from tcwebhook.orderbook import updates

        updates.write_of_envelope = lambda *_: None  # the book's input, switched off
    import uvloop

    cluster = new_cluster(fsync=True) if args.postgres else None
    try:
        with tempfile.TemporaryDirectory(prefix="hotpath-") as tmp:
            uvloop.run(_main(args, Path(tmp), cluster))
    finally:
        if cluster is not None:
            cluster.destroy()


if __name__ == "__main__":
    main()
