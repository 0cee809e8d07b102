"""Find what Tradecloud changed but never delivered, through its polling API, and repair it.

Tradecloud never retries a 4xx or a 500 and treats a 401 as final, so an event can be lost for
good: a misconfigured receiver, a credential change, anything before tcwebhook was installed.
``Reconciler.run`` pages through ``order-search/poll`` (or its single-delivery variant) and
``shipment/poll`` with ``lastUpdatedAfter`` and compares each object's ``lastUpdatedAt`` (and
``version``) with the newest event stored for that order or shipment. A *gap* is an object with
no stored event at all (``missing``) or only older state (``stale``). Then, by choice:

- ``resend`` asks Tradecloud to send the webhook again, so the change arrives the normal way;
- ``fetch`` stores the object as an event (kind ``order_fetch``/``shipment_fetch``, marked
  reconciled), delivered in order with the other events of its key;
- ``report`` only lists them.

Changes younger than ``grace`` are left for the next run (their webhook may be on its way). A run
that completes stores its high-water mark in the inbox, but never past a gap that is only
reported or resent (its event is not stored yet); a run cut short by API trouble keeps the old
mark, so the next run covers the same ground again — checking twice is harmless, skipping is not.
Nothing is marked reconciled unless its event was stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import orjson
import structlog

from tcwebhook.config import Settings
from tcwebhook.contract.kinds import EventKind, routing_key
from tcwebhook.contract.names import ORDER_FETCH_EVENT, SHIPMENT_FETCH_EVENT
from tcwebhook.errors import TradecloudNotFound
from tcwebhook.inbox.base import KeyUpdate, NewEvent, Reconciling
from tcwebhook.inbox.ids import updated_micros
from tcwebhook.tradecloud_api.polling import (
    ORDER_POLL,
    ORDER_POLL_SINGLE_DELIVERY,
    SHIPMENT_POLL,
    PollPage,
    object_id,
    object_updated_at,
    object_version,
)

log = structlog.get_logger(__name__)

Noun = Literal["order", "shipment"]
Action = Literal["report", "resend", "fetch"]
HIGH_WATER = "reconcile.high_water.{noun}"
STORED = frozenset({"fetched", "already stored"})


class ReconcileApi(Protocol):
    """What reconciliation needs from ``TradecloudClient``."""

    async def poll(self, path: str, filters: dict[str, Any], offset: int, limit: int) -> PollPage: ...

    async def resend_order(self, order_id: str) -> None: ...

    async def resend_shipment(self, shipment_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Gap:
    noun: Noun
    object_id: str
    number: str | None  # purchase order or shipment number
    reason: Literal["missing", "stale"]
    tradecloud_updated_at: str | None
    tradecloud_version: int | None
    stored_updated_at: str | None
    stored_version: int | None
    outcome: str = ""  # resent | fetched | already stored | failed: … | "" (report only)
    event_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.noun,
            "id": self.object_id,
            "number": self.number,
            "reason": self.reason,
            "tradecloudUpdatedAt": self.tradecloud_updated_at,
            "tradecloudVersion": self.tradecloud_version,
            "storedUpdatedAt": self.stored_updated_at,
            "storedVersion": self.stored_version,
            "outcome": self.outcome,
            "eventId": self.event_id,
        }


@dataclass(slots=True)
class Report:
    action: Action
    checked: dict[str, int] = field(default_factory=dict)  # noun -> objects compared
    gaps: list[Gap] = field(default_factory=list)
    high_water: dict[str, str] = field(default_factory=dict)  # noun -> new mark (complete runs only)
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.errors

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "complete": self.complete,
            "checked": self.checked,
            "gaps": [g.as_json() for g in self.gaps],
            "highWater": self.high_water,
            "errors": self.errors,
        }


def iso(epoch: float) -> str:
    """The timestamp format of the Tradecloud API (UTC, milliseconds, ``Z``)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class _Stored:
    updated_us: int | None
    updated_at: str | None
    event_id: str | None
    trigger_us: int | None  # newest GET trigger not yet resolved into a state (fetches on delivery)


def _summarise(updates: Iterable[KeyUpdate]) -> dict[str, _Stored]:
    best: dict[str, _Stored] = {}
    for u in updates:
        prev = best.get(u.key, _Stored(None, None, None, None))
        micros = updated_micros(u.last_updated_at)
        if micros is not None and (prev.updated_us is None or micros >= prev.updated_us):
            prev = replace(prev, updated_us=micros, updated_at=u.last_updated_at, event_id=u.event_id)
        if u.kind.is_fetch and micros is None:
            received = int(u.received_at.timestamp() * 1_000_000)
            if prev.trigger_us is None or received > prev.trigger_us:
                prev = replace(prev, trigger_us=received)
        elif prev.event_id is None:
            prev = replace(prev, event_id=u.event_id)
        best[u.key] = prev
    return best


def body_version(body: bytes) -> int | None:
    """``version`` of a stored order event or fetched order (JSON only)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    for holder in (data.get("orderEvent"), data.get("singleDeliveryOrderEvent"), data):
        if isinstance(holder, dict):
            version = object_version(holder)
            if version is not None:
                return version
    return None


def _number(noun: Noun, obj: dict[str, Any]) -> str | None:
    part, name = ("buyerOrder", "purchaseOrderNumber") if noun == "order" else ("supplierShipment", "shipmentNumber")
    holder = obj.get(part)
    value = holder.get(name) if isinstance(holder, dict) else None
    return value if isinstance(value, str) and value else None


class Reconciler:
    """One reconciliation run at a time over an open inbox and a Tradecloud client."""

    def __init__(
        self,
        settings: Settings,
        inbox: Reconciling,
        api: ReconcileApi,
        *,
        clock: Any = time.time,
    ) -> None:
        self._settings = settings
        self._cfg = settings.reconcile
        self._inbox = inbox
        self._api = api
        self._clock = clock

    def poll_path(self, noun: Noun) -> str:
        if noun == "shipment":
            return SHIPMENT_POLL
        return ORDER_POLL_SINGLE_DELIVERY if self._settings.connect.single_delivery else ORDER_POLL

    async def run(
        self,
        *,
        action: Action,
        since: float | None = None,
        orders: bool = True,
        shipments: bool = True,
    ) -> Report:
        """Compare and repair; ``since`` (seconds back) instead of the stored high-water mark.

        API trouble ends the run for that kind (recorded in ``errors``, mark kept); it never raises
        for it, so a background loop just tries again later.
        """
        report = Report(action)
        nouns: list[Noun] = []
        if orders:
            nouns.append("order")
        if shipments:
            nouns.append("shipment")
        for noun in nouns:
            try:
                await self._run_one(noun, action, since, report)
            except TradecloudNotFound as exc:
                report.errors.append(f"{noun}s: {exc}")
            except Exception as exc:  # API outage, rate limit after retries, store trouble
                log.warning("reconcile_incomplete", kind=noun, error=str(exc))
                report.errors.append(f"{noun}s: {exc}")
        return report

    async def _run_one(self, noun: Noun, action: Action, since: float | None, report: Report) -> None:
        now = self._clock()
        cutoff_us = int((now - self._cfg.grace) * 1_000_000)
        mark_name = HIGH_WATER.format(noun=noun)
        if since is not None:
            after = iso(now - since)
        else:
            after = await self._inbox.get_state(mark_name) or iso(now - self._cfg.since)
        limit = self._cfg.page_size
        offset = 0
        checked = 0
        open_us: int | None = None
        path = self.poll_path(noun)
        while True:
            page = await self._api.poll(path, {"lastUpdatedAfter": after}, offset, limit)
            objects = [o for o in page.data if object_id(o)]
            checked += len(objects)
            for gap in await self._gaps(noun, objects, cutoff_us):
                repaired = await self._repair(gap, action, objects)
                report.gaps.append(repaired)
                if repaired.outcome not in STORED:
                    # Reported or resent only: until its event is stored, later runs look again.
                    gap_us = updated_micros(repaired.tradecloud_updated_at)
                    if gap_us is not None:
                        open_us = gap_us - 1000 if open_us is None else min(open_us, gap_us - 1000)
            offset += len(page.data)
            if not page.data or len(page.data) < limit or (page.total is not None and offset >= page.total):
                break
        report.checked[noun] = checked
        if since is None:
            # Everything up to the cutoff was seen, except what is still open; never move back.
            after_us = updated_micros(after) or 0
            upto = cutoff_us if open_us is None else min(cutoff_us, open_us)
            mark = iso(max(after_us, upto) / 1_000_000)
            await self._inbox.set_state(mark_name, mark)
            report.high_water[noun] = mark

    async def _gaps(self, noun: Noun, objects: Sequence[dict[str, Any]], cutoff_us: int) -> list[Gap]:
        kind = EventKind.ORDER if noun == "order" else EventKind.SHIPMENT
        keyed: list[tuple[str, dict[str, Any]]] = []
        for obj in objects:
            oid = object_id(obj)
            assert oid is not None
            key = routing_key(kind, order_id=oid, shipment_id=oid)
            assert key is not None
            keyed.append((key, obj))
        stored = _summarise(await self._inbox.key_updates([k for k, _ in keyed]))
        gaps: list[Gap] = []
        for key, obj in keyed:
            updated = object_updated_at(obj)
            tc_us = updated_micros(updated)
            if tc_us is None or tc_us > cutoff_us:
                continue  # nothing to compare, or a change whose webhook may still be on its way
            state = stored.get(key)
            version = object_version(obj)
            gap = Gap(
                noun, key.partition(":")[2], _number(noun, obj), "missing", updated, version, None, None
            )
            if state is None:
                gaps.append(gap)
                continue
            if state.trigger_us is not None and state.trigger_us >= tc_us:
                continue  # a GET trigger after the change fetches that state (or a newer one)
            if state.updated_us is not None and state.updated_us > tc_us:
                continue
            stored_version = None
            if state.updated_us == tc_us:
                if version is None or state.event_id is None:
                    continue
                stored_version = body_version((await self._inbox.get_event(state.event_id)).body)
                if stored_version is None or stored_version >= version:
                    continue
            gaps.append(replace(gap, reason="stale", stored_updated_at=state.updated_at, stored_version=stored_version))
        return gaps

    async def _repair(self, gap: Gap, action: Action, objects: Sequence[dict[str, Any]]) -> Gap:
        log.warning(
            "reconcile_gap",
            kind=gap.noun,
            id=gap.object_id,
            number=gap.number,
            reason=gap.reason,
            tradecloud_updated_at=gap.tradecloud_updated_at,
            stored_updated_at=gap.stored_updated_at,
            action=action,
        )
        if action == "report":
            return gap
        if action == "resend":
            try:
                if gap.noun == "order":
                    await self._api.resend_order(gap.object_id)
                else:
                    await self._api.resend_shipment(gap.object_id)
            except TradecloudNotFound as exc:
                return replace(gap, outcome=f"failed: {exc}")
            return replace(gap, outcome="resent")
        obj = next(o for o in objects if object_id(o) == gap.object_id)
        result = await self._inbox.store(self._fetched_event(gap, obj))
        return replace(gap, outcome="already stored" if result.duplicate else "fetched", event_id=result.event_id)

    def _fetched_event(self, gap: Gap, obj: dict[str, Any]) -> NewEvent:
        kind = EventKind.ORDER_FETCH if gap.noun == "order" else EventKind.SHIPMENT_FETCH
        body = orjson.dumps(obj)
        return NewEvent(
            kind=kind,
            event_name=ORDER_FETCH_EVENT if gap.noun == "order" else SHIPMENT_FETCH_EVENT,
            # One event per object state: a second run (or a second process) stores nothing new.
            dedupe_key=f"reconcile:{gap.noun}:{gap.object_id}:{gap.tradecloud_updated_at}:{gap.tradecloud_version}",
            content_type="application/json",
            body=body,
            key=routing_key(kind, order_id=gap.object_id, shipment_id=gap.object_id),
            order_id=gap.object_id if gap.noun == "order" else None,
            shipment_id=gap.object_id if gap.noun == "shipment" else None,
            purchase_order_number=gap.number if gap.noun == "order" else None,
            shipment_number=gap.number if gap.noun == "shipment" else None,
            last_updated_at=gap.tradecloud_updated_at,
            headers={"x-tcwebhook-origin": "reconcile"},
            reconciled=True,
        )
