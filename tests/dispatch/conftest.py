"""Fixtures for the dispatcher tests: a real inbox file and small, real sinks that record calls."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.support.polling import eventually_async

from tcwebhook.config import DeliverySettings, StoreSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import PermanentError, TransientError
from tcwebhook.inbox import NewEvent, SqliteInbox, StoredEvent
from tcwebhook.inbox.postgres import PostgresInbox

# Decides one call: return to succeed, raise to fail. Gets the event and its call number (1-based).
Plan = Callable[[StoredEvent, int], Awaitable[None] | None]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingSink:
    """A sink that keeps every call and follows a plan for the outcome."""

    def __init__(
        self,
        name: str = "erp",
        plan: Plan | None = None,
        *,
        accepts: Callable[[StoredEvent], bool] | None = None,
        delivered: list[StoredEvent] | None = None,
    ) -> None:
        self.name = name
        self.plan = plan
        self._accepts = accepts
        self.calls: list[str] = []  # event ids, in call order
        # Successful calls in completion order (a list shared by sinks standing for one ERP).
        self.delivered: list[StoredEvent] = [] if delivered is None else delivered
        self.counts: Counter[str] = Counter()
        self.active = 0
        self.max_active = 0
        self.closed = False

    def accepts(self, event: StoredEvent) -> bool:
        return self._accepts(event) if self._accepts else True

    async def deliver(self, event: StoredEvent) -> None:
        self.calls.append(event.event_id)
        self.counts[event.event_id] += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(0)
            if self.plan is not None:
                outcome = self.plan(event, self.counts[event.event_id])
                if outcome is not None:
                    await outcome
        finally:
            self.active -= 1
        self.delivered.append(event)

    async def close(self) -> None:
        self.closed = True


class BatchRecordingSink(RecordingSink):
    """A ``RecordingSink`` that takes batches (as the files sink does): each batch's events are
    delivered together, and the batch sizes are kept."""

    batches = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sizes: list[int] = []

    async def deliver_batch(self, events: Sequence[StoredEvent]) -> list[BaseException | None]:
        self.sizes.append(len(events))
        done = await asyncio.gather(*(self.deliver(e) for e in events), return_exceptions=True)
        return [d if isinstance(d, BaseException) else None for d in done]


def fail_first(n: int, exc: type[Exception] = TransientError) -> Plan:
    def plan(event: StoredEvent, call: int) -> None:
        if call <= n:
            raise exc(f"ERP down (call {call})")

    return plan


def always(exc: type[Exception]) -> Plan:
    def plan(event: StoredEvent, call: int) -> None:
        raise exc("ERP refuses")

    return plan


PERMANENT = always(PermanentError)


def settings(**overrides: Any) -> DeliverySettings:
    values: dict[str, Any] = {
        "poll_interval": 0.05,
        "initial_delay": 0.01,
        "max_delay": 0.05,
        "jitter": 0.0,
        "lease_seconds": 5.0,
        "shutdown_timeout": 2.0,
        "concurrency": 8,
    }
    values.update(overrides)
    return DeliverySettings(**values)


def order(i: int, key: str | None = None, **overrides: Any) -> NewEvent:
    fields: dict[str, Any] = {
        "kind": EventKind.ORDER,
        "event_name": "OrderIssuedByBuyer",
        "dedupe_key": f"msg-{i}",
        "content_type": "application/json",
        "body": b'{"n": %d}' % i,
        "key": key if key is not None else f"order:o-{i}",
        "order_id": (key or f"order:o-{i}").removeprefix("order:"),
        "message_id": f"msg-{i}",
    }
    fields.update(overrides)
    return NewEvent(**fields)


def shipment(i: int, updated: str, shipment_id: str = "s-1") -> NewEvent:
    return NewEvent(
        kind=EventKind.SHIPMENT,
        event_name="ShipmentUpdated",
        dedupe_key=f"ship-{i}",
        content_type="application/json",
        body=b'{"shipment": %d}' % i,
        key=f"shipment:{shipment_id}",
        shipment_id=shipment_id,
        message_id=f"ship-{i}",
        last_updated_at=updated,
    )


@asynccontextmanager
async def opened(
    where: Path | str, sinks: tuple[str, ...] = ("erp",), *, hold_new: bool = False
) -> AsyncIterator[SqliteInbox]:
    """An open inbox on a SQLite file (a path) or a PostgreSQL database (a URL)."""
    box: Any
    if isinstance(where, str):
        box = PostgresInbox(where, StoreSettings(), sinks=sinks, hold_new=hold_new)
    else:
        box = SqliteInbox(where, StoreSettings(busy_timeout=5.0), sinks=sinks, hold_new=hold_new)
    await box.open()
    try:
        yield box
    finally:
        await box.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """The store every dispatcher test runs on: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "inbox.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def inbox(db_path: Path) -> AsyncIterator[SqliteInbox]:
    async with opened(db_path) as box:
        yield box


async def until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll ``check`` until it holds; fail after ``within`` seconds."""
    await eventually_async(check, within, interval=0.01)


async def settled(inbox: SqliteInbox, event_ids: list[str], within: float = 10.0) -> None:
    """Wait until none of the events is pending any more."""

    async def done() -> bool:
        for event_id in event_ids:
            if (await inbox.get_event(event_id)).status == "pending":
                return False
        return True

    await until(done, within)
