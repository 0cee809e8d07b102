"""The inbox's part in reconciliation, on SQLite and PostgreSQL: reconciled events, key updates,
named state and leases."""

from __future__ import annotations

import asyncio

import pytest

from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox import EventFilter, Inbox

from .conftest import MakeInbox, order_event, shipment_event

pytestmark = pytest.mark.anyio


class TestReconciled:
    """Events stored by reconciliation are found by the filter; others are not."""

    async def test_filter(self, inbox: Inbox) -> None:
        plain = await inbox.store(order_event(1))
        marked = await inbox.store(order_event(2, reconciled=True, kind=EventKind.ORDER_FETCH))
        again = await inbox.store(order_event(2, reconciled=True, kind=EventKind.ORDER_FETCH))
        assert again.duplicate
        assert [e.event_id for e in await inbox.list_events(EventFilter(reconciled=True))] == [marked.event_id]
        assert [e.event_id for e in await inbox.list_events(EventFilter(reconciled=False))] == [plain.event_id]
        assert await inbox.list_event_ids(EventFilter(reconciled=True, status="pending")) == [marked.event_id]


class TestKeyUpdates:
    """What is stored per order or shipment, without bodies, oldest first."""

    async def test_by_key(self, inbox: Inbox) -> None:
        await inbox.store(order_event(1, last_updated_at="2025-05-02T08:00:00Z"))
        await inbox.store(order_event(6, last_updated_at="2025-05-02T09:00:00Z"))  # same key o-1
        await inbox.store(shipment_event(1))
        found = await inbox.key_updates(["order:o-1", "shipment:s-1", "order:none"])
        assert [(u.key, u.last_updated_at) for u in found] == [
            ("order:o-1", "2025-05-02T08:00:00Z"),
            ("order:o-1", "2025-05-02T09:00:00Z"),
            ("shipment:s-1", None),
        ]
        assert await inbox.key_updates([]) == []


class TestStateAndLeases:
    """Named values persist; a lease has one holder until released or expired."""

    async def test_state(self, inbox: Inbox) -> None:
        assert await inbox.get_state("mark") is None
        await inbox.set_state("mark", "2025-01-01T00:00:00.000Z")
        await inbox.set_state("mark", "2025-01-02T00:00:00.000Z")
        assert await inbox.get_state("mark") == "2025-01-02T00:00:00.000Z"

    async def test_lease(self, inbox: Inbox, make_inbox: MakeInbox) -> None:
        other = make_inbox()  # another process on the same store
        await other.open()
        try:
            assert await inbox.acquire_lease("job", "a", 60)
            assert await inbox.acquire_lease("job", "a", 60)  # renewal
            assert not await other.acquire_lease("job", "b", 60)
            await other.release_lease("job", "b")  # not the holder: no effect
            assert not await other.acquire_lease("job", "b", 60)
            await inbox.release_lease("job", "a")
            assert await other.acquire_lease("job", "b", 0.05)
            await asyncio.sleep(0.1)
            assert await inbox.acquire_lease("job", "a", 60)  # b's lease ran out
        finally:
            await other.close()
