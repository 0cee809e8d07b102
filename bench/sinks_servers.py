"""Delivery throughput of the sftp, amqp and sql sinks against local servers, one worker.

The servers are the tests' private ones (``tests/support/sink_servers.py``: sshd, a RabbitMQ node,
MariaDB; ``tests/support/postgres.py``: PostgreSQL with fsync on), on loopback. For each sink,
``--events`` events over ``--orders`` orders are stored in a SQLite inbox and one dispatcher (one
worker, ``concurrency`` deliveries at a time, per-order FIFO) delivers them all; the figure is
events/s from its start until nothing is pending. The sink alone (the same events handed to
``deliver`` by ``concurrency`` tasks, no inbox) is measured too.

    python bench/sinks_servers.py [--events 2000] [--orders 50] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.postgres import new_cluster
from tests.support.sink_servers import KEY_PASSPHRASE, new_mariadb, new_rabbit_node, new_ssh_server

from tcwebhook.config import DeliverySettings, StoreSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.dispatch import Dispatcher
from tcwebhook.inbox import NewEvent, SqliteInbox, StoredEvent
from tcwebhook.sinks.base import Probed, Sink

BODY = (
    b'{"eventName":"OrderLinesAcceptedBySupplier","orderEvent":{"orderId":"%s",'
    b'"buyerOrder":{"purchaseOrderNumber":"PO-%s"},"lines":['
    + b",".join(b'{"id":"l%d","buyerLine":{"position":"%04d"}}' % (i, i) for i in range(20))
    + b"]}}"
)


def new_events(n: int, orders: int) -> list[NewEvent]:
    found = []
    for i in range(n):
        order = f"o-{i % orders:03d}"
        found.append(
            NewEvent(
                kind=EventKind.ORDER, event_name="OrderLinesAcceptedBySupplier", dedupe_key=f"m-{i}",
                content_type="application/json", body=BODY % (order.encode(), order.encode()),
                key=f"order:{order}", order_id=order, purchase_order_number=f"PO-{order}", message_id=f"m-{i}",
            )
        )
    return found


async def through_dispatcher(sink: Sink, events: list[NewEvent], concurrency: int, folder: Path) -> float:
    box = SqliteInbox(folder / f"inbox-{time.monotonic_ns()}.db", StoreSettings(), sinks=(sink.name,))
    await box.open()
    try:
        for event in events:
            await box.store(event)
        settings = DeliverySettings(concurrency=concurrency, poll_interval=0.05, lease_seconds=60)
        dispatcher = Dispatcher(box, [sink], settings)
        started = time.perf_counter()
        await dispatcher.start()
        try:
            for _ in range(36_000):
                if (await box.count_by_status()).get("delivered", 0) >= len(events):
                    break
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
        finally:
            await dispatcher.stop()  # closes the sink
        counts = {k: v for k, v in (await box.count_by_status()).items() if v}
        if counts != {"delivered": len(events)}:
            raise RuntimeError(f"not all delivered: {counts}")
    finally:
        await box.close()
    return len(events) / elapsed


async def alone(sink: Sink, events: list[StoredEvent], concurrency: int) -> float:
    queue: asyncio.Queue[StoredEvent] = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)

    async def worker() -> None:
        while not queue.empty():
            await sink.deliver(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await sink.close()
    return len(events) / elapsed


async def stored_copies(events: list[NewEvent], folder: Path) -> list[StoredEvent]:
    box = SqliteInbox(folder / f"copies-{time.monotonic_ns()}.db", StoreSettings(), sinks=("x",))
    await box.open()
    try:
        return [await box.get_event((await box.store(e)).event_id) for e in events]
    finally:
        await box.close()


async def run(n: int, orders: int, concurrency: int) -> None:
    from tcwebhook.sinks.amqp import AmqpSink
    from tcwebhook.sinks.sftp import SftpSink
    from tcwebhook.sinks.sql import SqlSink

    events = new_events(n, orders)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os_dirs = iter(range(1000))

        async def record(label: str, make: Callable[[], Sink]) -> None:
            first = make()
            if isinstance(first, Probed):
                await first.probe()  # connects (and creates a table): not part of the figure
            rate = await through_dispatcher(first, events, concurrency, folder)
            second = make()
            if isinstance(second, Probed):
                await second.probe()
            copies = await stored_copies(events, folder)
            single = await alone(second, copies, concurrency)
            print(f"{label:<40} {rate:>8,.0f} events/s through the dispatcher, {single:>8,.0f} alone", flush=True)

        ssh = new_ssh_server()
        try:
            def sftp() -> Sink:
                drop = folder / f"drop-{next(os_dirs)}"
                drop.mkdir()
                return SftpSink(
                    "erp", "127.0.0.1", port=ssh.port, username=ssh.username, private_key=ssh.client_key,
                    passphrase=KEY_PASSPHRASE, known_hosts=ssh.known_hosts, remote_dir=str(drop),
                )

            await record("sftp (OpenSSH internal-sftp, fsync)", sftp)
        finally:
            ssh.destroy()

        rabbit = new_rabbit_node()
        try:
            await record(
                "amqp (RabbitMQ, persistent, confirmed)",
                lambda: AmqpSink("erp", rabbit.url(), exchange=f"bench-{next(os_dirs)}", declare=True),
            )
        finally:
            rabbit.destroy()

        await record(
            "sql, SQLite file",
            lambda: SqlSink("erp", f"sqlite:///{folder / f'staging-{next(os_dirs)}.db'}", create_table=True),
        )
        pg = new_cluster(fsync=True)
        try:
            await record(
                "sql, PostgreSQL (fsync on)",
                lambda: SqlSink("erp", pg.url(pg.create_database()), create_table=True),
            )
        finally:
            pg.destroy()
        maria = new_mariadb()
        try:
            await record(
                "sql, MariaDB (InnoDB)",
                lambda: SqlSink("erp", maria.url(maria.create_database()), create_table=True),
            )
        finally:
            maria.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    # Per-event lines would measure the logging, not the sinks.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(f"{args.events} events over {args.orders} orders, concurrency {args.concurrency}, one worker")
    asyncio.run(run(args.events, args.orders, args.concurrency))


if __name__ == "__main__":
    main()
