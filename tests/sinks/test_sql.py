"""The sql sink against real databases: a SQLite file, the suite's PostgreSQL, a private MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.pgcluster import PASSWORD as PG_PASSWORD
from tests.pgcluster import PgCluster
from tests.servers import MARIADB_PASSWORD, MariaDb

from tcwebhook.errors import PermanentError, StartupError, TransientError
from tcwebhook.sinks.sql import COLUMNS, SqlSink, engine_url

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
            return [dict(r._mapping) for r in conn.execute(sa.select(reflected).order_by(reflected.c.seq))]
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
