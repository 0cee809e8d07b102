"""SIGKILL of ``tcwebhook serve`` while deliveries to an sftp, amqp or sql sink are under way.

The kill lands wherever the deliveries are; each round checks that it caught at least one of
them half-way (an upload not yet renamed, a message published but not recorded as delivered, a
row committed but not recorded), and kills again until one did. After the restart every event is
on the ERP side once (sftp, sql), or at least once with the same ``message_id`` (amqp).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import aio_pika
import httpx
import pytest
import sqlalchemy as sa
from tests.reliability.conftest import FAST_DELIVERY, order_event, wait_until
from tests.support.inbox import inbox_events
from tests.support.servers import RunningServer, ServerFactory
from tests.support.sink_servers import KEY_PASSPHRASE, RabbitNode, SshServer

from tcwebhook.inbox.base import StoredEvent

from .amqp_consumer import drain, unique

ORDERS = 6
MAX_POSTS = 500  # per round; the kill ends a round long before
ROUNDS = 10
SEED = 20261206


class Sender(threading.Thread):
    """Posts order events one after another until the server goes away (or ``MAX_POSTS``)."""

    def __init__(self, server: RunningServer, first: int) -> None:
        super().__init__(daemon=True)
        self.server, self.first = server, first

    def run(self) -> None:
        with contextlib.suppress(httpx.HTTPError), self.server.client() as client:
            for i in range(self.first, self.first + MAX_POSTS):
                body = order_event(f"order-{i % ORDERS:02d}-crash", i)
                r = client.post(
                    self.server.url_orders, content=json.dumps(body).encode(),
                    headers={**self.server.bearer(), "content-type": "application/json"},
                )
                assert r.status_code == 202, r.text


def pending_ids(server: RunningServer) -> set[str]:
    return {e.event_id for e in inbox_events(server) if e.status == "pending"}


def crash_until_caught(
    server_factory: ServerFactory, sink_toml: str, caught: Callable[[RunningServer], bool]
) -> RunningServer:
    """Post while delivering, kill -9 at a random moment, restart; until ``caught`` saw a delivery
    cut half-way. Returns the restarted server."""
    rng = random.Random(SEED)
    server = server_factory.start("crash", extra=FAST_DELIVERY + sink_toml)
    config = server.config_path
    assert config is not None
    for round_no in range(ROUNDS):
        sender = Sender(server, round_no * MAX_POSTS)
        sender.start()
        time.sleep(rng.uniform(0.3, 0.8))  # events arrive and are being delivered
        server.stop(signal.SIGKILL)
        sender.join(10)
        hit = caught(server)
        server = server_factory.start_with(config, 0, config.parent)
        if hit:
            return server
    raise AssertionError(f"no kill in {ROUNDS} rounds caught a delivery half-way:\n{server.logs()[-3000:]}")


def all_delivered(server: RunningServer) -> set[str]:
    """Wait until every stored event is delivered; their ids (what the ERP side must have)."""
    events: list[StoredEvent] = []

    def done() -> bool:
        events[:] = inbox_events(server)
        return all(e.status == "delivered" for e in events)

    assert wait_until(done, 120, interval=0.3), server.logs()[-3000:]
    assert events
    return {e.event_id for e in events}


@pytest.mark.slow
class TestKillDuringDelivery:
    """No event is lost to a kill -9 between upload and rename, publish and confirm, commit and record."""

    def test_sftp(self, server_factory: ServerFactory, ssh_server: SshServer, tmp_path: Path) -> None:
        drop = tmp_path / "inbound"
        drop.mkdir()
        sink = (
            f'[[sinks]]\nname = "erp"\ntype = "sftp"\nhost = "127.0.0.1"\nport = {ssh_server.port}\n'
            f'username = "{ssh_server.username}"\nprivate_key = "{ssh_server.client_key}"\n'
            f'passphrase = "{KEY_PASSPHRASE}"\nknown_hosts = "{ssh_server.known_hosts}"\nremote_dir = "{drop}"\n'
        )

        def caught(_: RunningServer) -> bool:
            return any(name.startswith(".") and name.endswith(".tmp") for name in os.listdir(drop))

        stored = all_delivered(crash_until_caught(server_factory, sink, caught))
        names = os.listdir(drop)
        assert not [n for n in names if n.startswith(".")]
        ids = [n.removesuffix(".json").rsplit("_", 1)[1] for n in names]
        assert len(ids) == len(stored) and set(ids) == stored  # each once, none missing

    def test_amqp(self, server_factory: ServerFactory, rabbit_node: RabbitNode, tmp_path: Path) -> None:
        exchange = unique("crash")
        audit = unique("audit")  # a second queue on the exchange: the test looks without consuming
        asyncio.run(_bind_audit_queue(rabbit_node.url(), exchange, audit))
        sink = (
            f'[[sinks]]\nname = "erp"\ntype = "amqp"\nurl = "{rabbit_node.url()}"\nexchange = "{exchange}"\n'
            "declare = true\n"
        )
        seen: set[str] = set()

        def caught(server: RunningServer) -> bool:
            seen.update(m.message_id or "" for m in asyncio.run(drain(rabbit_node.url(), audit)))
            return bool(seen & pending_ids(server))  # in the broker, not recorded as delivered

        stored = all_delivered(crash_until_caught(server_factory, sink, caught))
        got = asyncio.run(drain(rabbit_node.url(), exchange, expect=len(stored)))
        assert {m.message_id for m in got} == stored  # at least once each, under the event's id

    def test_sql(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'staging.db'}"
        sink = f'[[sinks]]\nname = "erp"\ntype = "sql"\nurl = "{url}"\ncreate_table = true\n'

        def rows() -> list[str]:
            engine = sa.create_engine(url)
            try:
                with engine.connect() as conn:
                    return [r[0] for r in conn.execute(sa.text("SELECT event_id FROM tradecloud_events"))]
            finally:
                engine.dispose()

        def caught(server: RunningServer) -> bool:
            return bool(set(rows()) & pending_ids(server))  # committed, not recorded as delivered

        stored = all_delivered(crash_until_caught(server_factory, sink, caught))
        found = rows()
        assert len(found) == len(stored) and set(found) == stored


async def _bind_audit_queue(url: str, exchange: str, queue: str) -> None:
    conn = await aio_pika.connect(url, timeout=10)
    try:
        channel = await conn.channel()
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        q = await channel.declare_queue(queue, durable=True)
        await q.bind(ex, "#")
    finally:
        await conn.close()
