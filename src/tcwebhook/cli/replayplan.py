"""What ``events replay`` would do, per sink, before it does it (``--dry-run``, and the summary).

For every selected event and target sink one outcome: re-queued; skipped because that sink has it
already (with ``--dead``, which touches dead deliveries only) or because another process is
delivering it right now; and, among the re-queued, those a newer state of the same order or
shipment has already overtaken (the dispatcher records them as superseded instead of delivering,
unless ``--force``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tcwebhook.config import Settings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import EventNotFound
from tcwebhook.inbox.base import DeliveryStatus, Inbox, KeyUpdate, StoredEvent


@dataclass
class SinkPlan:
    requeue: int = 0
    delivered: int = 0  # skipped: that sink has it (``--dead`` leaves delivered ones alone)
    in_flight: int = 0  # skipped: claimed by a running dispatcher
    superseded: list[str] = field(default_factory=list)  # re-queued, but older than a delivered state


@dataclass
class ReplayPlan:
    sinks: dict[str, SinkPlan] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def sink(self, name: str) -> SinkPlan:
        return self.sinks.setdefault(name, SinkPlan())

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for plan in self.sinks.values():
            total.update(
                requeue=plan.requeue, delivered=plan.delivered, in_flight=plan.in_flight,
                superseded=len(plan.superseded),
            )
        return total

    def as_json(self) -> dict[str, object]:
        return {
            "sinks": {
                name: {
                    "requeue": p.requeue,
                    "skipped_delivered": p.delivered,
                    "skipped_in_flight": p.in_flight,
                    "superseded": p.superseded,
                }
                for name, p in sorted(self.sinks.items())
            },
            "missing": self.missing,
        }


def _stale_kinds(settings: Settings) -> frozenset[EventKind]:
    kinds = set()
    if settings.delivery.stale_shipments:
        kinds.add(EventKind.SHIPMENT)
    if settings.delivery.stale_orders:
        kinds.add(EventKind.ORDER)
    return frozenset(kinds)


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _overtaken(inbox: Inbox, event: StoredEvent, sink: str, newer: Sequence[KeyUpdate]) -> bool:
    """Whether a newer state of the event's key was delivered to ``sink`` already."""
    mine = _moment(event.last_updated_at)
    if mine is None:
        return False
    for other in newer:
        theirs = _moment(other.last_updated_at)
        if other.event_id == event.event_id or other.kind != event.kind or theirs is None or theirs <= mine:
            continue
        delivered = DeliveryStatus.DELIVERED.value
        if any(d.sink == sink and d.status == delivered for d in await inbox.deliveries(other.event_id)):
            return True
    return False


async def plan_replay(
    inbox: Inbox,
    settings: Settings,
    event_ids: Sequence[str],
    *,
    sink: str | None,
    only_dead: bool,
    force: bool,
    only_unrecognised: bool = False,
) -> ReplayPlan:
    """Read (never change) what a replay of ``event_ids`` would do to each target sink."""
    plan = ReplayPlan()
    # --dead and --unrecognised re-queue deliveries of that status only, and create none.
    only = DeliveryStatus.DEAD if only_dead else DeliveryStatus.UNRECOGNISED if only_unrecognised else None
    targets = [sink] if sink is not None else [s.name for s in settings.sinks]
    stale = _stale_kinds(settings)
    now = datetime.now(UTC)
    by_key: dict[str, Sequence[KeyUpdate]] = {}
    for event_id in event_ids:
        try:
            event = await inbox.get_event(event_id)
        except EventNotFound:
            plan.missing.append(event_id)
            continue
        deliveries = {d.sink: d for d in await inbox.deliveries(event_id)}
        for name in targets:
            target = plan.sink(name)
            current = deliveries.get(name)
            if current is None:
                if only is not None:
                    continue
            elif current.claim_expires is not None and current.claim_expires > now:
                target.in_flight += 1
                continue
            elif only is not None and current.status != only.value:
                if current.status == DeliveryStatus.DELIVERED.value:
                    target.delivered += 1
                continue
            target.requeue += 1
            if not force and event.key is not None and event.kind in stale:
                if event.key not in by_key:
                    by_key[event.key] = await inbox.key_updates([event.key])
                if await _overtaken(inbox, event, name, by_key[event.key]):
                    target.superseded.append(event.event_id)
    return plan
