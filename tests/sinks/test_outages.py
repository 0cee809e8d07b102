"""Each server-backed sink through the dispatcher: an outage mid-run, and dead letters replayed.

200 events over 20 orders; the server (sshd, the RabbitMQ broker, PostgreSQL, MariaDB) is
stopped for a few seconds while events still arrive. Afterwards every event is on the ERP side
exactly once (AMQP: at least once, each confirmed), each order's events in arrival order.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.support.postgres import new_cluster
from tests.support.sink_servers import KEY_PASSPHRASE, RabbitNode, SshServer, new_mariadb, new_ssh_server

from tcwebhook.sinks.amqp import AmqpSink
from tcwebhook.sinks.sftp import SftpSink
from tcwebhook.sinks.sql import SqlSink

from .amqp_consumer import drain, unique
from .scenario import EVENTS, dead_then_replayed, in_order, outage

pytestmark = pytest.mark.anyio


def sftp_sink(server: SshServer, folder: Path, **overrides: object) -> SftpSink:
    options: dict[str, object] = {
        "port": server.port, "username": server.username, "private_key": server.client_key,
        "passphrase": KEY_PASSPHRASE, "known_hosts": server.known_hosts, "remote_dir": str(folder), "timeout": 5.0,
    }
    options.update(overrides)
    return SftpSink("erp", "127.0.0.1", **options)  # type: ignore[arg-type]


@pytest.mark.slow
class TestOutage:
    """The server stops for a few seconds mid-run: nothing lost, nothing twice, per-order order kept."""

    async def test_sftp(self, tmp_path: Path) -> None:
        server = new_ssh_server()
        folder = tmp_path / "inbound"
        folder.mkdir()
        try:
            run = await outage(tmp_path, sftp_sink(server, folder), server.stop, server.start)
        finally:
            server.destroy()
        assert run.failed_attempts > 0  # the outage was seen
        names = os.listdir(folder)
        assert not [n for n in names if n.startswith(".")]  # no upload left half-way
        by_id = {name.removesuffix(".json").rsplit("_", 1)[1]: folder / name for name in names}
        assert len(names) == EVENTS and set(by_id) == {e.event_id for e in run.events}
        for event in run.events:
            assert by_id[event.event_id].read_bytes() == event.body
        # The rename sets each file's change time: per order, in arrival order.
        seq = {e.event_id: e.seq for e in run.events}
        placed = sorted(by_id, key=lambda i: (by_id[i].stat().st_ctime_ns, seq[i]))
        order_of = {e.event_id: e.order_id or "" for e in run.events}
        assert in_order(placed, run.per_order(), order_of) == run.per_order()

    async def test_amqp(self, tmp_path: Path, rabbit_node: RabbitNode) -> None:
        sink = AmqpSink("erp", rabbit_node.url(), exchange=unique("outage"), declare=True, timeout=5.0)
        run = await outage(tmp_path, sink, rabbit_node.stop_app, rabbit_node.start_app)
        assert run.failed_attempts > 0
        got = await drain(rabbit_node.url(), sink.queue, expect=EVENTS)
        ids = [m.message_id or "" for m in got]
        assert set(ids) == {e.event_id for e in run.events}  # every one confirmed is in the queue
        order_of = {e.event_id: e.order_id or "" for e in run.events}
        assert in_order(ids, run.per_order(), order_of) == run.per_order()
        assert {m.correlation_id for m in got} == {e.order_id for e in run.events}

    @pytest.mark.parametrize("database", ["postgresql", "mariadb"])
    async def test_sql(self, tmp_path: Path, database: str) -> None:
        if database == "postgresql":
            pg = new_cluster()
            name = pg.create_database()
            url, stop, start, destroy = pg.url(name), pg.stop, pg.start, pg.destroy
            # The row number the ERP's table adds tells the order rows arrived in.
            counter = "ALTER TABLE tradecloud_events ADD COLUMN row_no BIGSERIAL"
        else:
            maria = new_mariadb()
            url, stop, start, destroy = maria.url(maria.create_database()), maria.stop, maria.start, maria.destroy
            counter = "ALTER TABLE tradecloud_events ADD COLUMN row_no BIGINT NOT NULL AUTO_INCREMENT UNIQUE"
        try:
            sink = SqlSink("erp", url, create_table=True, timeout=5.0)
            await sink.probe()
            with sink.engine.begin() as conn:
                conn.execute(sa.text(counter))
            run = await outage(tmp_path, sink, stop, start)
            engine = sa.create_engine(sink.engine.url)
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT event_id, order_id FROM tradecloud_events ORDER BY row_no")).all()
            engine.dispose()
        finally:
            destroy()
        assert run.failed_attempts > 0
        ids = [r[0] for r in rows]
        assert len(ids) == EVENTS and set(ids) == {e.event_id for e in run.events}
        order_of = {e.event_id: e.order_id or "" for e in run.events}
        assert in_order(ids, run.per_order(), order_of) == run.per_order()


class TestDeadLetters:
    """Refused credentials and a missing table dead-letter with the reason; a replay delivers."""

    async def test_sftp_key_refused(self, tmp_path: Path, ssh_server: SshServer) -> None:
        import asyncssh

        folder = tmp_path / "inbound"
        folder.mkdir()
        other = tmp_path / "other_key"
        other.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
        refused = sftp_sink(ssh_server, folder, private_key=other, passphrase=None)
        _, reason = await dead_then_replayed(tmp_path, refused, lambda: sftp_sink(ssh_server, folder))
        assert "refused the credentials (authentication failed)" in reason
        assert len(os.listdir(folder)) == 1

    async def test_amqp_password_refused(self, tmp_path: Path, rabbit_node: RabbitNode) -> None:
        exchange = unique("dead")
        refused = AmqpSink("erp", rabbit_node.url("wrong-password"), exchange=exchange, declare=True)
        event_id, reason = await dead_then_replayed(
            tmp_path, refused, lambda: AmqpSink("erp", rabbit_node.url(), exchange=exchange, declare=True)
        )
        assert "ACCESS_REFUSED" in reason and "wrong-password" not in reason
        assert [m.message_id for m in await drain(rabbit_node.url(), exchange, expect=1)] == [event_id]

    async def test_sql_missing_table(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'staging.db'}"
        fixed = SqlSink("erp", url, create_table=True)

        async def create_the_table() -> None:
            await fixed.probe()

        _, reason = await dead_then_replayed(tmp_path, SqlSink("erp", url), lambda: fixed, create_the_table)
        assert "no such table: tradecloud_events" in reason
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM tradecloud_events")).scalar() == 1
        engine.dispose()

    async def test_sql_password_refused(self, tmp_path: Path, mariadb: object) -> None:
        from tests.support.sink_servers import MARIADB_PASSWORD, MariaDb

        assert isinstance(mariadb, MariaDb)
        url = mariadb.url(mariadb.create_database())
        refused = SqlSink("erp", url.replace(MARIADB_PASSWORD, "wrong-password"), create_table=True)
        _, reason = await dead_then_replayed(tmp_path, refused, lambda: SqlSink("erp", url, create_table=True),
                                             None)
        assert "Access denied" in reason and "wrong-password" not in reason
