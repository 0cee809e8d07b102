"""Two receivers and two workers on one PostgreSQL, with SIGKILLs and a database restart mid-run.

Senders resend like Tradecloud (until 2xx), each order's events one after another, spread over
both receivers. Meanwhile one receiver and one worker are killed at random moments (and started
again) and PostgreSQL is restarted once in immediate mode (crash recovery). Afterwards: every
acknowledged messageId is stored exactly once and delivered at least once, and every order's
events reached the ERP in the order they were acknowledged.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from tests.reliability.conftest import FAST_DELIVERY, ErpEndpoint, message_id_of, order_event, wait_until
from tests.support.postgres import PgCluster, new_cluster
from tests.support.servers import CLI, RunningServer, ServerFactory

pytestmark = pytest.mark.reliability

ORDERS = 16
EVENTS_PER_ORDER = 12
RUN_SECONDS = 60  # the senders' bound; the run normally ends well before


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    cluster = new_cluster()
    yield cluster
    cluster.destroy()


class _Senders:
    """One thread per order: its events in sequence, each resent until a receiver says 2xx."""

    def __init__(self, receivers: list[RunningServer]) -> None:
        self.receivers = receivers
        self.acked: dict[str, list[str]] = defaultdict(list)  # order id -> messageIds, in ack order
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + RUN_SECONDS
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(ORDERS)]

    def _run(self, n: int) -> None:
        order_id = f"failover-{n:02d}"
        rng = random.Random(n)
        clients = [r.client() for r in self.receivers]
        try:
            for seq in range(EVENTS_PER_ORDER):
                body = json.dumps(order_event(order_id, seq)).encode()
                target = rng.randrange(len(clients))
                while time.monotonic() < self.deadline:
                    server, client = self.receivers[target], clients[target]
                    try:
                        answer = client.post(
                            server.url_orders,
                            content=body,
                            headers={**server.bearer(), "content-type": "application/json"},
                        )
                        if answer.status_code in (200, 202):
                            with self.lock:
                                self.acked[order_id].append(str(message_id_of(body)))
                            break
                        assert answer.status_code == 503, answer.text  # never 500, never a 4xx
                    except httpx.HTTPError:
                        pass
                    target = (target + 1) % len(clients)  # try the other receiver next
                    time.sleep(0.1)
                time.sleep(rng.random() / 20)
        finally:
            for client in clients:
                client.close()

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(RUN_SECONDS + 10)


def _start_worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*CLI, "worker", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT, cwd=config.parent
        )


class TestFailover:
    """Kill a receiver, kill a worker, restart the database: nothing acknowledged is lost or reordered."""

    def test_two_receivers_two_workers(self, server_factory: ServerFactory, cluster: PgCluster) -> None:
        erp = ErpEndpoint()
        erp.start()
        url = cluster.url(cluster.create_database())
        extra = (
            f'[store]\nurl = "{url}"\nconnect_timeout = 2\nstatement_timeout = 5\n'
            + FAST_DELIVERY
            + f'[[sinks]]\nname = "erp"\ntype = "http"\nurl = "{erp.url}"\ntimeout = 5\n'
        )
        receivers = [server_factory.start(f"r{i}", extra=extra) for i in range(2)]
        worker_config = receivers[0].config_path
        assert worker_config is not None
        logs = [worker_config.parent / f"worker-{i}.log" for i in range(2)]
        workers = [_start_worker(worker_config, logs[i]) for i in range(2)]
        senders = _Senders(receivers)
        rng = random.Random(11)
        try:
            senders.start()
            time.sleep(rng.uniform(1.0, 3.0))
            # A receiver killed mid-load, started again on the same port.
            victim = receivers[0]
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)
            assert victim.config_path is not None
            receivers[0] = server_factory.start_with(victim.config_path, victim.port, victim.config_path.parent)
            senders.receivers[0] = receivers[0]
            time.sleep(rng.uniform(0.5, 2.0))
            # A worker killed while it holds claims; its leases run out and others take over.
            workers[1].send_signal(signal.SIGKILL)
            workers[1].wait(10)
            time.sleep(rng.uniform(0.5, 1.5))
            # The database crashes and comes back (immediate stop: crash recovery on start).
            cluster.stop("immediate")
            time.sleep(1.0)
            cluster.start()
            workers[1] = _start_worker(worker_config, logs[1])
            senders.join()
            assert not senders.alive()
            acked = {m: order for order, ids in senders.acked.items() for m in ids}
            assert len(acked) == ORDERS * EVENTS_PER_ORDER, "the senders ran out of time"

            def all_delivered() -> bool:
                with erp._lock:
                    got = {message_id_of(body) for _, _, body in erp.accepted}
                return set(acked) <= got

            assert wait_until(all_delivered, 60, 0.2), "not every acknowledged event was delivered"
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    worker.kill()
            erp.stop()

        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT message_id, count(*) FROM events GROUP BY message_id").fetchall()
        stored = dict(rows)
        assert all(stored.get(m) == 1 for m in acked), "an acknowledged messageId is missing or stored twice"
        # Per order, the ERP saw the events in acknowledgement order (a redelivery may repeat the
        # latest one, never go back to an earlier one).
        position = {m: i for ids in senders.acked.values() for i, m in enumerate(ids)}
        seen: dict[str, list[int]] = defaultdict(list)
        for _, _, body in erp.accepted:
            mid = message_id_of(body)
            if mid in acked:
                seen[acked[mid]].append(position[mid])
        for order, positions in seen.items():
            assert positions == sorted(positions), f"{order} delivered out of order: {positions}"
        assert all(r.proc.poll() is None for r in receivers)
        for log in (*logs, *(r.log_path for r in receivers)):
            text = log.read_text(errors="replace")
            assert '"status": 500' not in text and '"status":500' not in text
        print(
            f"\nfailover: {len(acked)} acknowledged, {len(erp.accepted)} deliveries "
            f"({len(erp.accepted) - len(acked)} redelivered), pid {os.getpid()}"
        )

