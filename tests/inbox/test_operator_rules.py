"""What operators do to a store: replays that keep the attempt count, deleting junk, id prefixes.

Each test runs on SQLite and on PostgreSQL (the ``inbox`` fixture)."""

from __future__ import annotations

import time

import pytest

from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import EventNotFound
from tcwebhook.inbox import AttemptOutcome, AttemptResult, DeliveryStatus, Inbox

from .conftest import order_event

pytestmark = pytest.mark.anyio

_STALE: frozenset[EventKind] = frozenset()


async def _attempt(inbox: Inbox, status: DeliveryStatus, outcome: AttemptOutcome) -> bool:
    (claim,) = await inbox.claim_due(owner="w", sinks=["erp"], limit=1, lease=30, stale_kinds=_STALE)
    replayed = claim.replayed
    again = time.time() if status is DeliveryStatus.PENDING else None
    await inbox.finish(claim, AttemptResult(status, outcome, time.time(), 0.01, None, again))
    return replayed


class TestAttemptNumbers:
    """Attempt numbers count on across replays; the first claim after a replay says it is one."""

    async def test_numbers_continue_after_replay(self, inbox: Inbox) -> None:
        event_id = (await inbox.store(order_event(1))).event_id
        assert not await _attempt(inbox, DeliveryStatus.PENDING, AttemptOutcome.TRANSIENT)
        assert not await _attempt(inbox, DeliveryStatus.DEAD, AttemptOutcome.PERMANENT)
        await inbox.replay([event_id], only_dead=True)
        assert await _attempt(inbox, DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED)
        attempts = await inbox.attempts(event_id)
        assert [(a.number, a.outcome) for a in attempts] == [(1, "transient"), (2, "permanent"), (3, "delivered")]
        (delivery,) = await inbox.deliveries(event_id)
        assert delivery.attempts == 1  # the retry count starts afresh; the history does not

    async def test_new_events_are_not_replays(self, inbox: Inbox) -> None:
        await inbox.store(order_event(2))
        assert not await _attempt(inbox, DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED)


class TestQuarantineDelete:
    """A quarantined body that is junk can be deleted; others stay."""

    async def test_delete(self, inbox: Inbox) -> None:
        keep = await inbox.quarantine(route="orders", content_type="text/plain", body=b"a", headers={},
                                      reason="r", status_code=415)
        junk = await inbox.quarantine(route="orders", content_type="text/plain", body=b"b", headers={},
                                      reason="r", status_code=415)
        await inbox.delete_quarantined(junk)
        assert [e.id for e in await inbox.list_quarantined()] == [keep]
        with pytest.raises(EventNotFound):
            await inbox.get_quarantined(junk)
        with pytest.raises(EventNotFound):
            await inbox.delete_quarantined(junk)


class TestIdPrefix:
    """Event ids by prefix: an index range, every match up to the limit."""

    async def test_prefix(self, inbox: Inbox) -> None:
        ids = sorted([(await inbox.store(order_event(i))).event_id for i in range(3)])
        assert await inbox.event_ids_starting(ids[0], limit=5) == [ids[0]]
        assert await inbox.event_ids_starting(ids[0][:10], limit=5) == [i for i in ids if i.startswith(ids[0][:10])]
        assert await inbox.event_ids_starting("ffffffff", limit=5) == []
        assert await inbox.event_ids_starting(ids[0][:4], limit=2) == ids[:2]
