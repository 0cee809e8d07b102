"""What only the PostgreSQL inbox does: many processes on one database, and a database in trouble."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

import psycopg
import pytest
from tests.pgcluster import PASSWORD, PgCluster, new_cluster

from tcwebhook.config import StoreSettings, redact_url
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import StartupError, StoreUnavailable
from tcwebhook.inbox import EventFilter
from tcwebhook.inbox.dialect import POSTGRES
from tcwebhook.inbox.postgres import PostgresInbox
from tcwebhook.inbox.rules import delivery as delivery_rules
from tcwebhook.inbox.schema import SCHEMA_VERSION

from .conftest import first_value, order_event

pytestmark = pytest.mark.anyio

FAST = StoreSettings(connect_timeout=2, statement_timeout=2)


@asynccontextmanager
async def opened(
    url: str, sinks: tuple[str, ...] = ("erp",), settings: StoreSettings = FAST
) -> AsyncIterator[PostgresInbox]:
    box = PostgresInbox(url, settings, sinks=sinks)
    await box.open()
    try:
        yield box
    finally:
        await box.close()


def admin(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


async def until_ok(action: object, within: float = 20.0) -> object:
    deadline = time.monotonic() + within
    while True:
        try:
            return await action()  # type: ignore[operator]
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


class TestSchema:
    """The schema is made once, under an advisory lock, however many processes start at once."""

    async def test_many_open_a_new_database_together(self, pg_url: str) -> None:
        boxes = [PostgresInbox(pg_url, FAST, sinks=("erp",)) for _ in range(6)]
        await asyncio.gather(*(b.open() for b in boxes))
        try:
            results = await asyncio.gather(*(b.store(order_event(i)) for i, b in enumerate(boxes)))
            assert len({r.seq for r in results}) == 6
        finally:
            for b in boxes:
                await b.close()
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT version FROM tcwebhook_schema").fetchall() == [(SCHEMA_VERSION,)]

    async def test_newer_schema_refuses_to_open(self, pg_url: str) -> None:
        async with opened(pg_url):
            pass
        admin(pg_url, f"UPDATE tcwebhook_schema SET version = {SCHEMA_VERSION + 1}")
        with pytest.raises(StartupError, match="newer"):
            await PostgresInbox(pg_url, FAST).open()


class TestAttemptNumber:
    """A new attempt's number is looked up by its delivery alone: on a table without statistics
    the planner AND-ed in ``attempts_sink`` and read every attempt of the sink (0.3 ms per delivery
    at 2,000 attempts, growing with the table)."""

    async def test_uses_the_delivery_index_on_a_young_table(self, pg_url: str) -> None:
        async with opened(pg_url):
            pass
        admin(pg_url, "INSERT INTO attempts (seq, sink, number, started_at, duration, outcome)"
                      " SELECT g, 'erp', 1, 0, 0, 'delivered' FROM generate_series(1, 3000) AS g")
        lookup = delivery_rules._INSERT_ATTEMPT.partition(" SELECT ")[2]
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute(
                "EXPLAIN SELECT " + POSTGRES.sql(lookup),  # type: ignore[arg-type]
                (7, "erp", 1.0, 0.1, "delivered", None, 7, "erp"),
            ).fetchall()
        plan = " / ".join(str(row[0]) for row in rows)
        assert "attempts_delivery" in plan, plan
        assert "attempts_sink" not in plan, plan


class TestConnecting:
    """The URL is libpq's: parameters pass through, the password may come from PGPASSWORD."""

    async def test_wrong_password_is_a_startup_error_without_the_password(self, pg_cluster: PgCluster) -> None:
        url = pg_cluster.url().replace(PASSWORD, "wrong-password-123")
        with pytest.raises(StartupError) as caught:
            await PostgresInbox(url, StoreSettings(connect_timeout=0.5)).open()
        assert "wrong-password-123" not in str(caught.value)
        assert "password" in str(caught.value)

    async def test_password_from_pgpassword(self, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PGPASSWORD", PASSWORD)
        bare = pg_url.replace(f":{PASSWORD}@", "@")
        async with opened(bare + "?sslmode=disable&application_name=receiver-1") as box:
            result = await box.store(order_event(1))
            assert (await box.get_event(result.event_id)).dedupe_key == "msg-1"
            with psycopg.connect(pg_url) as conn:
                names = {r[0] for r in conn.execute("SELECT application_name FROM pg_stat_activity")}
            assert "receiver-1" in names

    def test_redacted_url(self) -> None:
        assert redact_url("postgresql://u:s3cret@db:5432/x?sslmode=require") == (
            "postgresql://u:***@db:5432/x?sslmode=require"
        )
        assert redact_url("postgresql://db/x?user=u&password=s3cret") == "postgresql://db/x?user=u&password=***"
        assert redact_url("postgresql://u@db/x") == "postgresql://u@db/x"

    async def test_commit_guarantee_is_configurable(self, pg_url: str) -> None:
        settings = StoreSettings(synchronous_commit="remote_apply")
        async with opened(pg_url, settings=settings) as box:
            assert await box._write(first_value("SHOW synchronous_commit")) == "remote_apply"


class TestSeveralProcesses:
    """Receivers and dispatchers in several processes share one database safely."""

    async def test_duplicates_across_receivers_store_once(self, pg_url: str) -> None:
        async with opened(pg_url) as first, opened(pg_url) as second:
            results = await asyncio.gather(
                *(box.store(order_event(i)) for i in range(60) for box in (first, second))
            )
            for i in range(60):
                one, other = results[2 * i], results[2 * i + 1]
                assert one.event_id == other.event_id
                assert [one.duplicate, other.duplicate].count(False) == 1
            assert len(await first.list_event_ids(EventFilter(limit=1000))) == 60

    async def test_claims_are_disjoint_and_per_key_heads_only(self, pg_url: str) -> None:
        async with AsyncExitStack() as stack:
            boxes = [await stack.enter_async_context(opened(pg_url)) for _ in range(3)]
            for i in range(40):
                await boxes[0].store(order_event(i))  # keys order:o-0 … o-4
            claims = await asyncio.gather(
                *(
                    b.claim_due(owner=f"w{n}", sinks=["erp"], limit=10, lease=30, stale_kinds=frozenset())
                    for n, b in enumerate(boxes)
                )
            )
            taken = [c for group in claims for c in group]
            assert len(taken) == 5  # one head per key, whoever took it
            assert len({c.event.key for c in taken}) == 5
            assert len({c.event.seq for c in taken}) == 5

    async def test_notify_wakes_other_processes(self, pg_url: str) -> None:
        async with opened(pg_url) as worker_side, opened(pg_url) as server_side:
            woken = asyncio.Event()
            worker_side.subscribe(woken.set)
            await asyncio.sleep(0.3)  # the listener connects and wakes once on its own
            woken.clear()
            started = time.monotonic()
            await server_side.store(order_event(1))
            await asyncio.wait_for(woken.wait(), 5)
            assert time.monotonic() - started < 1.0

    async def test_a_failing_operation_fails_alone(self, pg_url: str) -> None:
        async with opened(pg_url) as box:
            bad = order_event(10, event_name="Order\x00Issued")  # PostgreSQL text cannot hold NUL
            outcomes = await asyncio.gather(
                *(box.store(order_event(i)) for i in range(10)),
                box.store(bad),
                *(box.store(order_event(i)) for i in range(11, 20)),
                return_exceptions=True,
            )
            assert isinstance(outcomes[10], StoreUnavailable)
            assert all(not isinstance(o, BaseException) for i, o in enumerate(outcomes) if i != 10)
            assert len(await box.list_events(EventFilter())) == 19


class TestTrouble:
    """A database in trouble means StoreUnavailable (503), and recovery needs no restart."""

    async def test_lock_wait_times_out(self, pg_url: str) -> None:
        settings = StoreSettings(connect_timeout=2, statement_timeout=0.3)
        async with opened(pg_url, settings=settings) as box:
            await box.store(order_event(1))
            with psycopg.connect(pg_url) as holder:
                holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await box.store(order_event(2))
                assert time.monotonic() - started < 3
                holder.rollback()
            assert not (await box.store(order_event(2))).duplicate

    async def test_read_only_database(self, pg_url: str, pg_cluster: PgCluster) -> None:
        async with opened(pg_url) as box:
            await box.store(order_event(1))
            dbname = pg_url.rsplit("/", 1)[1]
            pg_cluster.sql(f"ALTER DATABASE {dbname} SET default_transaction_read_only = on")
            pg_cluster.sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}'"
            )
            with pytest.raises(StoreUnavailable):
                await box.store(order_event(2))
            with pytest.raises(StoreUnavailable):
                await box.ping()
            pg_cluster.sql(f"ALTER DATABASE {dbname} RESET default_transaction_read_only")
            pg_cluster.sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}'"
            )
            await until_ok(box.ping)
            assert not (await box.store(order_event(2))).duplicate

    async def test_out_of_connections(self, pg_url: str, pg_cluster: PgCluster) -> None:
        async with opened(pg_url) as box:
            await box.store(order_event(1))
            dbname = pg_url.rsplit("/", 1)[1]
            pg_cluster.sql(f"ALTER DATABASE {dbname} CONNECTION LIMIT 0")
            pg_cluster.sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}'"
            )
            with pytest.raises(StoreUnavailable):
                await box.store(order_event(2))
            with pytest.raises(StoreUnavailable):
                await box.list_events(EventFilter())
            pg_cluster.sql(f"ALTER DATABASE {dbname} CONNECTION LIMIT -1")
            await until_ok(lambda: box.store(order_event(2)))
            assert len(await box.list_events(EventFilter())) == 2


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A server of this test's own, to stop and start."""
    cluster = new_cluster()
    yield cluster
    cluster.destroy()


class TestRestart:
    """The server going away and coming back."""

    async def test_down_then_back(self, own_cluster: PgCluster) -> None:
        url = own_cluster.url(own_cluster.create_database())
        async with opened(url) as box:
            first = await box.store(order_event(1))
            woken = asyncio.Event()
            box.subscribe(woken.set)
            own_cluster.stop()
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await box.store(order_event(2))
            with pytest.raises(StoreUnavailable):
                await box.ping()
            with pytest.raises(StoreUnavailable):
                await box.get_event(first.event_id)
            assert time.monotonic() - started < 15
            own_cluster.start()
            await until_ok(box.ping)
            second = await until_ok(lambda: box.store(order_event(2)))
            assert not second.duplicate  # type: ignore[attr-defined]
            assert (await box.get_event(first.event_id)).kind is EventKind.ORDER
            # The listener reconnects by itself and wakes once for what it may have missed.
            woken.clear()
            await box.store(order_event(3))
            await asyncio.wait_for(woken.wait(), 10)

