"""The cost of keeping the order book on the stored path: µs per event, SQLite and PostgreSQL.

In one process, without HTTP: the same parsed order events (the benchmark's ~4 KB body, unique
message ids spread over ``--orders`` orders, so most events update an existing book entry and
all of its lines) are stored through ``Inbox.store`` by 64 concurrent tasks, once as the receiver
stores them today (``NewEvent.from_parsed``: the book update is computed and applied in the
store's transaction) and once with the book switched off (``book=None``). Rounds alternate,
each on a fresh store; the medians of the rounds are reported, and the book's cost is the median
of the rounds' differences. It is compared with the stored-event cost of the same run and with
the end-to-end stored-event cost of ``docs/performance.md`` (HTTPS in, store, 202 out).

The collector is tuned as ``tcwebhook serve`` tunes it (``transport.server.tune_gc``: the heap
frozen, a large young threshold) once the events are built, unless ``--default-gc``: with
CPython's defaults every full collection walks the benchmark's own thousands of parsed events,
which a receiver never holds, and charges that walk to whichever variant allocates more.

Run: ``.venv/bin/python bench/orderbook.py [--events 4000] [--rounds 5] [--no-postgres] [--default-gc]``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # type: ignore[import-untyped]
from bench.body import order_event_template
from tests.pgcluster import new_cluster

from tcwebhook.config import StoreSettings
from tcwebhook.contract.parse import ParsedWebhook, parse_webhook
from tcwebhook.inbox import Inbox, NewEvent, SqliteInbox
from tcwebhook.orderbook.updates import write_of_envelope
from tcwebhook.transport.server import tune_gc

CONCURRENCY = 64
Make = Callable[[ParsedWebhook, bytes], NewEvent]


def with_book(parsed: ParsedWebhook, body: bytes) -> NewEvent:
    return NewEvent.from_parsed(parsed, content_type="application/json", body=body, headers={})


def without_book(parsed: ParsedWebhook, body: bytes) -> NewEvent:
    # from_parsed minus the book update: the same fields, the same constructor.
    return NewEvent(
        kind=parsed.kind, event_name=parsed.event_name, dedupe_key=parsed.dedupe_key,
        content_type="application/json", body=body, key=parsed.routing_key, order_id=parsed.order_id,
        shipment_id=parsed.shipment_id, purchase_order_number=parsed.purchase_order_number,
        shipment_number=parsed.shipment_number, message_id=parsed.message_id,
        last_updated_at=parsed.last_updated_at, headers={}, book=None,
        drift=parsed.drift if parsed.findings is None else parsed.findings,
    )


async def _store_all(
    inbox: Inbox, events: Sequence[tuple[ParsedWebhook, bytes]], make: Make, db_cpu: Callable[[], float]
) -> tuple[float, float]:
    """Seconds and CPU seconds (this process and the database's) to store every event with
    ``CONCURRENCY`` tasks (what a busy receiver does)."""
    items = iter(events)

    async def worker() -> None:
        for parsed, body in items:
            await inbox.store(make(parsed, body))

    started, cpu, db = time.perf_counter(), time.process_time(), db_cpu()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started, time.process_time() - cpu + db_cpu() - db


async def _round(
    open_store: Callable[[], Inbox], events: Sequence[tuple[ParsedWebhook, bytes]], make: Make,
    db_cpu: Callable[[], float],
) -> tuple[float, float]:
    inbox = open_store()
    await inbox.open()
    try:
        return await _store_all(inbox, events, make, db_cpu)
    finally:
        await inbox.close()


def _bodies(count: int, orders: int) -> list[tuple[ParsedWebhook, bytes]]:
    template = order_event_template()
    out = []
    for serial in range(count):
        body = template.variant(serial, orders)
        out.append((parse_webhook("orders", body, "application/json"), body))
    return out


def _update_cost(events: Sequence[tuple[ParsedWebhook, bytes]]) -> float:
    """CPU µs per event to compute the book write from the receiver's parse (no store)."""
    started = time.process_time()
    for parsed, _ in events:
        write_of_envelope(parsed.kind, parsed.envelope)
    return (time.process_time() - started) / len(events) * 1e6


def _no_db() -> float:
    return 0.0


def _measure(name: str, factory: Callable[[int], Inbox], events: Sequence[tuple[ParsedWebhook, bytes]],
             rounds: int, db_cpu: Callable[[], float] = _no_db) -> dict[str, Any]:
    times: dict[str, list[float]] = {"without": [], "with": []}
    cpus: dict[str, list[float]] = {"without": [], "with": []}
    serial = 0
    for _ in range(rounds):
        for variant, make in (("without", without_book), ("with", with_book)):
            serial += 1
            seconds, cpu = asyncio.run(_round(lambda s=serial: factory(s), events, make, db_cpu))
            times[variant].append(seconds)
            cpus[variant].append(cpu)
            print(f"  {name} {variant:7} book: {len(events) / seconds:8.0f} events/s, "
                  f"{cpu / len(events) * 1e6:7.1f} µs CPU/event", file=sys.stderr)
    off = statistics.median(times["without"]) / len(events) * 1e6
    on = statistics.median(times["with"]) / len(events) * 1e6
    cpu_off = statistics.median(cpus["without"]) / len(events) * 1e6
    cpu_on = statistics.median(cpus["with"]) / len(events) * 1e6
    # The book's cost is the median of each round's difference: a round's two variants run back
    # to back, so what other work on the machine adds to both cancels out better than in the
    # difference of the two medians.
    diffs = [(w - o) / len(events) * 1e6 for o, w in zip(cpus["without"], cpus["with"], strict=True)]
    book = statistics.median(diffs)
    return {"store": name, "us_without": off, "us_with": on, "eps_without": 1e6 / off, "eps_with": 1e6 / on,
            "cpu_without": cpu_off, "cpu_with": cpu_on, "cpu_book": book, "spread": (min(diffs), max(diffs)),
            "share": book / cpu_off}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--default-gc", action="store_true", help="keep CPython's collector settings")
    args = parser.parse_args(argv)
    events = _bodies(args.events, args.orders)
    if not args.default_gc:
        tune_gc()
    lines = len(events[0][0].envelope.event.lines or ())  # type: ignore[union-attr]
    print(f"{args.events} events over {args.orders} orders, {lines} lines each, {len(events[0][1])} bytes",
          file=sys.stderr)
    results = [{"store": "compute only", "us_book": _update_cost(events)}]
    work = Path(tempfile.mkdtemp(prefix="tcwebhook-bench-book-"))
    try:
        settings = StoreSettings()
        results.append(_measure(
            "SQLite", lambda s: SqliteInbox(work / f"inbox-{s}.db", settings, sinks=("erp",)), events, args.rounds
        ))
        if not args.no_postgres:
            from tcwebhook.inbox.postgres import PostgresInbox

            cluster = new_cluster(fsync=True)
            try:
                def pg(s: int) -> Inbox:
                    return PostgresInbox(cluster.url(cluster.create_database()), settings, sinks=("erp",))

                def db_cpu() -> float:
                    total = 0.0
                    for pid in cluster.server_pids():
                        try:
                            times = psutil.Process(pid).cpu_times()
                        except psutil.NoSuchProcess:
                            continue
                        total += times.user + times.system
                    return total

                results.append(_measure("PostgreSQL", pg, events, args.rounds, db_cpu))
            finally:
                cluster.destroy()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| store | events/s without the book | events/s with it | CPU µs/event without | CPU µs/event with | "
          "book CPU µs/event (rounds' range) | share of the stored-event CPU |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        if "share" not in r:
            print(f"| {r['store']} | | | | | {r['us_book']:.1f} | |")
            continue
        low, high = r["spread"]
        print(f"| {r['store']} | {r['eps_without']:,.0f} | {r['eps_with']:,.0f} | {r['cpu_without']:.1f} | "
              f"{r['cpu_with']:.1f} | {r['cpu_book']:.1f} ({low:.0f} to {high:.0f}) | {r['share']:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
