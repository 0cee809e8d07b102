"""The contract-drift record, the same for every store: each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from tcwebhook.contract.drift import Finding
from tcwebhook.inbox import Inbox

from .conftest import order_event

pytestmark = pytest.mark.anyio

FIELD = Finding("field", "orderEvent.carbonFootprint")
NAME = Finding("event_name", "OrderLinesTeleportedByBuyer")


class TestDriftRecord:
    """Findings are counted with their first and last event, in the store's transaction."""

    async def test_counted_with_first_and_last_event(self, inbox: Inbox) -> None:
        first = await inbox.store(dataclasses.replace(order_event(1), drift=(FIELD,)))
        await inbox.store(order_event(2))  # nothing unknown
        last = await inbox.store(dataclasses.replace(order_event(3), drift=(FIELD, NAME)))
        again = await inbox.store(dataclasses.replace(order_event(3), drift=(FIELD, NAME)))  # a duplicate
        assert again.duplicate
        records = {(r.what, r.detail): r for r in await inbox.contract_drift(datetime.now(UTC) - timedelta(days=1))}
        assert set(records) == {("field", FIELD.detail), ("event_name", NAME.detail)}
        field = records[("field", FIELD.detail)]
        assert (field.count, field.first_event_id, field.last_event_id) == (2, first.event_id, last.event_id)
        assert field.first_seen <= field.last_seen
        name = records[("event_name", NAME.detail)]
        assert (name.count, name.first_event_id, name.last_event_id) == (1, last.event_id, last.event_id)

    async def test_since_filters_on_last_seen(self, inbox: Inbox) -> None:
        await inbox.store(dataclasses.replace(order_event(1), drift=(FIELD,)))
        assert await inbox.contract_drift(datetime.now(UTC) + timedelta(seconds=5)) == []

    async def test_concurrent_stores_count_every_event(self, inbox: Inbox) -> None:
        await asyncio.gather(*(inbox.store(dataclasses.replace(order_event(i), drift=(FIELD,))) for i in range(30)))
        [record] = await inbox.contract_drift(datetime.now(UTC) - timedelta(days=1))
        assert record.count == 30

    async def test_worked_out_for_a_stored_event_only(self, inbox: Inbox) -> None:
        """A lazy walk (the receiver's) is called in the store's transaction, never for a duplicate."""
        calls: list[int] = []

        def walk(n: int) -> tuple[Finding, ...]:
            calls.append(n)
            return (FIELD,)

        await inbox.store(dataclasses.replace(order_event(1), drift=lambda: walk(1)))
        again = await inbox.store(dataclasses.replace(order_event(1), drift=lambda: walk(2)))
        assert again.duplicate
        assert calls == [1]
        [record] = await inbox.contract_drift(datetime.now(UTC) - timedelta(days=1))
        assert record.count == 1
