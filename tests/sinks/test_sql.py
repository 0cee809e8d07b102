"""The sql sink against real databases: a SQLite file, the suite's PostgreSQL, a private MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.support.postgres import PASSWORD as PG_PASSWORD
from tests.support.postgres import PgCluster
from tests.support.sink_servers import MARIADB_PASSWORD, MariaDb

from tcwebhook.errors import PermanentError, StartupError, TransientError
from tcwebhook.sinks.sql import COLUMNS, LINE_COLUMNS, SqlSink, engine_url

from .conftest import make_event

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind the sink is documented for, as the sink's url."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'staging.db'}"
    elif request.param == "postgresql":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        name = cluster.create_database()
        yield cluster.url(name)
        cluster.drop_database(name)
    else:
        server: MariaDb = request.getfixturevalue("mariadb")
        name = server.create_database()
        yield server.url(name)
        server.sql(f"DROP DATABASE IF EXISTS {name}")


def rows(url: str, table: str = "tradecloud_events") -> list[dict[str, Any]]:
    """What the ERP would read: every row, through its own connection."""
    engine = sa.create_engine(engine_url(url))
    try:
        reflected = sa.Table(table, sa.MetaData(), autoload_with=engine)  # typed values, SQLite's too
        with engine.connect() as conn:
            order = [reflected.c.seq, *([reflected.c.line_no] if "line_no" in reflected.c else [])]
            return [dict(r._mapping) for r in conn.execute(sa.select(reflected).order_by(*order))]
    finally:
        engine.dispose()


def wrong_password(url: str) -> str:
    return url.replace(PG_PASSWORD, "not-the-password").replace(MARIADB_PASSWORD, "not-the-password")


class TestDelivery:
    """One row per event with the documented columns; a redelivery adds nothing and succeeds."""

    async def test_row_and_redelivery(self, db_url: str) -> None:
        sink = SqlSink("erp", db_url, create_table=True)
        try:
            assert "has the expected columns" in await sink.probe()
            event = make_event()
            await sink.deliver(event)
            await sink.deliver(event)  # redelivery after a crash: already there
            await sink.deliver(replace(event, event_id="01JEVENT0000000000000000CD", seq=43))
        finally:
            await sink.close()
        found = rows(db_url)
        assert [r["event_id"] for r in found] == ["01JEVENT0000000000000000AB", "01JEVENT0000000000000000CD"]
        first = found[0]
        assert set(first) == set(COLUMNS)
        assert first["payload"] == event.body.decode()
        assert (first["kind"], first["event_name"], first["order_id"], first["po_number"]) == (
            "order", "OrderLinesAcceptedBySupplier", "3b0c2a0e", "PO-2025-000123",
        )
        assert first["shipment_id"] is None and first["seq"] == 42
        assert first["content_type"] == "application/json"
        at = first["received_at"]
        assert (at.hour, at.minute, at.second) == (10, 15, 2)

    async def test_extra_columns_of_the_erp_are_kept(self, db_url: str) -> None:
        sink = SqlSink("erp", db_url, create_table=True)
        try:
            await sink.probe()
            with sink.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE tradecloud_events ADD COLUMN imported INTEGER DEFAULT 0"))
            await sink.probe()  # the expected columns are there; more are fine
            await sink.deliver(make_event())
        finally:
            await sink.close()
        assert rows(db_url)[0]["imported"] == 0


class TestStartupCheck:
    """The probe refuses a table that is missing or lacks columns, in one sentence naming the sink."""

    async def test_missing_table(self, db_url: str) -> None:
        sink = SqlSink("staging", db_url)
        try:
            with pytest.raises(StartupError, match=r"^Sink 'staging': table tradecloud_events does not exist.*"
                               r"create_table = true\.$"):
                await sink.probe()
            # And when it is dropped after start-up, deliveries dead-letter with the reason.
            with pytest.raises(PermanentError, match=r"(?i)tradecloud_events"):
                await sink.deliver(make_event())
        finally:
            await sink.close()

    async def test_missing_columns(self, db_url: str) -> None:
        engine = sa.create_engine(engine_url(db_url))
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE tradecloud_events (event_id VARCHAR(64) PRIMARY KEY, seq INTEGER)"))
        engine.dispose()
        sink = SqlSink("staging", db_url)
        try:
            with pytest.raises(StartupError, match=r"lacks the columns received_at, kind, .*payload: add them"):
                await sink.probe()
        finally:
            await sink.close()


class TestServerFailures:
    """Refused credentials are permanent; an unreachable server is transient."""

    @pytest.mark.parametrize("server", ["postgresql", "mariadb"])
    async def test_wrong_password(self, server: str, request: pytest.FixtureRequest) -> None:
        if server == "postgresql":
            cluster: PgCluster = request.getfixturevalue("pg_cluster")
            url = cluster.url("postgres")
        else:
            maria: MariaDb = request.getfixturevalue("mariadb")
            url = maria.url(maria.create_database())
        sink = SqlSink("erp", wrong_password(url), create_table=True, timeout=10)
        try:
            with pytest.raises(StartupError, match=r"^Sink 'erp': .*fix the user, password and database in url") as err:
                await sink.probe()
            with pytest.raises(PermanentError) as failure:
                await sink.deliver(make_event())
        finally:
            await sink.close()
        for text in (str(err.value), str(failure.value)):
            assert "not-the-password" not in text

    async def test_nothing_listening(self) -> None:
        sink = SqlSink("erp", "postgresql://u:secret-pw@127.0.0.1:9/db", timeout=5)
        try:
            with pytest.raises(TransientError, match=r"127\.0\.0\.1") as failure:
                await sink.deliver(make_event())
            with pytest.raises(StartupError, match=r"^Sink 'erp': .*start it or fix url"):
                await sink.probe()
        finally:
            await sink.close()
        assert "secret-pw" not in str(failure.value)

    async def test_unknown_dialect_is_a_startup_error(self) -> None:
        with pytest.raises(StartupError, match=r"^Sink 'erp': no SQLAlchemy dialect or driver for nosuchdb"):
            SqlSink("erp", "nosuchdb://host/db")


class TestLines:
    """``rows = "lines"``: one row per schedule or shipment line, with the CSV format's columns."""

    async def test_order_and_shipment_lines(self, db_url: str) -> None:
        from tests.orderbook.sequences import ISSUED, PO, shipment, stored_event

        from tcwebhook.config import SqlSinkSettings
        from tcwebhook.sinks.factory import build_sink

        sink = build_sink(SqlSinkSettings(name="erp", url=db_url, rows="lines", create_table=True))
        assert isinstance(sink, SqlSink)
        order = stored_event(ISSUED, seq=1)
        shipped = stored_event(
            shipment("ShipmentIssuedBySupplier", "2026-03-06T10:00:00Z", "Issued", "50", "msg-ship-1"), seq=2
        )
        try:
            assert "tradecloud_lines has the expected columns" in await sink.probe()
            await sink.deliver(order)
            await sink.deliver(order)  # a redelivery: the event's rows are there already
            await sink.deliver(stored_event(ISSUED, xml=True, seq=3))  # the same order as tXML, another event
            await sink.deliver(shipped)
        finally:
            await sink.close()
        found = rows(db_url, "tradecloud_lines")
        assert set(found[0]) == set(LINE_COLUMNS)
        first = [r for r in found if r["seq"] == 1]
        assert [(r["line_no"], r["line_position"], r["schedule_position"], r["quantity"]) for r in first] == [
            (1, "0001", "01", Decimal("60")),
            (2, "0001", "02", Decimal("40")),
            (3, "0002", "01", Decimal("10.5")),
        ]
        assert {r["purchase_order_number"] for r in first} == {PO}
        assert first[2]["net_price"] == Decimal("1234.5678")
        assert first[2]["delivery_overdue"] in (False, 0) and first[2]["delivery_overdue"] is not None  # MariaDB: 0
        as_xml = [r for r in found if r["seq"] == 3]
        strip = ("event_id", "seq", "received_at")
        assert [{k: v for k, v in r.items() if k not in strip} for r in as_xml] == [
            {k: v for k, v in r.items() if k not in strip} for r in first
        ]
        ship = [r for r in found if r["seq"] == 2]
        assert ship and {r["kind"] for r in ship} == {"shipment"}
        assert {r["shipment_number"] for r in ship} == {"SHP-77"}
        packed = [r for r in ship if r["load_carrier"] == "MSKU1234567"]
        assert packed and packed[0]["quantity"] == Decimal("50")

    async def test_missing_columns_named(self, db_url: str) -> None:
        sink = SqlSink("erp", db_url, table="tradecloud_events", create_table=True)
        try:
            await sink.probe()  # the event table, where the lines table is expected next
        finally:
            await sink.close()
        from tcwebhook.formats import Output

        lines = SqlSink("erp", db_url, table="tradecloud_events", lines=Output(sink="erp").rows)
        try:
            with pytest.raises(StartupError, match=r"lacks the columns line_no, purchase_order_number"):
                await lines.probe()
        finally:
            await lines.close()
