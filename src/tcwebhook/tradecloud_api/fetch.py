"""GET-webhook processing: a stored trigger (only an id) becomes the full object as an event.

The HTTP layer stores a GET trigger as kind ``order_fetch``/``shipment_fetch`` with a JSON body
``{"orderId": ...}`` or ``{"shipmentId": ...}``. ``FetchResolver.resolve`` fetches the object and
returns the event the sinks receive: same event id, sequence, kind and event name; its body is
the object exactly as ``GET /order/{id}`` or ``GET /shipment/{id}`` answered it (JSON, top-level
``id``). ``plan_fetches`` lets a dispatcher batch skip triggers a newer one makes redundant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import PermanentError, TradecloudApiError, TradecloudNotFound, TransientError
from tcwebhook.inbox.base import StoredEvent
from tcwebhook.tradecloud_api.coalesce import Coalescer

if TYPE_CHECKING:
    from tcwebhook.tradecloud_api.client import TradecloudClient

log = structlog.get_logger(__name__)

ApiObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FetchTarget:
    kind: EventKind  # ORDER_FETCH or SHIPMENT_FETCH
    object_id: str

    @property
    def key(self) -> str:
        noun = "order" if self.kind is EventKind.ORDER_FETCH else "shipment"
        return f"{noun}:{self.object_id}"


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """Which triggers of a batch to fetch, and which a newer trigger for the same id covers."""

    fetch: tuple[StoredEvent, ...]
    superseded: dict[str, str]  # event_id of an older trigger -> event_id of the newer one


def received_epoch(event: StoredEvent) -> float:
    received = event.received_at
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)  # the inbox stores UTC
    return received.timestamp()


def fetch_target(event: StoredEvent) -> FetchTarget:
    """The object a trigger asks for; ``PermanentError`` when it names none."""
    if not event.kind.is_fetch:
        raise ValueError(f"event {event.event_id} of kind {event.kind} is not a fetch trigger")
    try:
        body = orjson.loads(event.body) if event.body else {}
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if event.kind is EventKind.ORDER_FETCH:
        object_id = body.get("orderId") or event.order_id
        if not object_id and body.get("legacyOrderId"):
            raise PermanentError("a legacy (v1) order id cannot be fetched from the v2 API")
    else:
        object_id = body.get("shipmentId") or event.shipment_id
    if not isinstance(object_id, str) or not object_id.strip():
        raise PermanentError(f"fetch trigger {event.event_id} carries no usable id")
    return FetchTarget(event.kind, object_id.strip())


def is_resolved(event: StoredEvent) -> bool:
    """A fetch-kind event that already carries its object (stored by reconciliation)."""
    if not event.kind.is_fetch or not event.body.startswith(b"{"):
        return False
    try:
        body = orjson.loads(event.body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and isinstance(body.get("id"), str)


def plan_fetches(events: Sequence[StoredEvent]) -> FetchPlan:
    """Keep the newest trigger per object (by ``seq``); older ones are superseded by it."""
    newest: dict[str, StoredEvent] = {}
    others: list[StoredEvent] = []
    for event in sorted(events, key=lambda e: e.seq):
        if not event.kind.is_fetch:
            others.append(event)
            continue
        try:
            key = fetch_target(event).key
        except PermanentError:
            others.append(event)  # let the resolver dead-letter it with its reason
            continue
        newest[key] = event
    superseded: dict[str, str] = {}
    for event in events:
        if event.kind.is_fetch and event not in others:
            winner = newest[fetch_target(event).key]
            if winner.event_id != event.event_id:
                superseded[event.event_id] = winner.event_id
    keep = sorted([*newest.values(), *others], key=lambda e: e.seq)
    return FetchPlan(tuple(keep), superseded)


def _text(obj: ApiObject, *path: str) -> str | None:
    node: Any = obj
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node if isinstance(node, str) and node else None


class FetchResolver:
    """Turns fetch triggers into full-object events; one API call per object and moment."""

    def __init__(self, client: TradecloudClient, *, coalescer: Coalescer[ApiObject] | None = None) -> None:
        self._client = client
        self._coalescer = coalescer if coalescer is not None else Coalescer()

    @property
    def coalescer(self) -> Coalescer[ApiObject]:
        return self._coalescer

    async def fetch(self, event: StoredEvent) -> ApiObject:
        """The current object a trigger names (shared with concurrent/earlier triggers)."""
        target = fetch_target(event)

        async def call() -> ApiObject:
            if target.kind is EventKind.ORDER_FETCH:
                return await self._client.get_order(target.object_id)
            return await self._client.get_shipment(target.object_id)

        noun = target.key.partition(":")[0]
        try:
            return await self._coalescer.get(target.key, received_epoch(event), call)
        except TradecloudNotFound as exc:
            raise PermanentError(f"{noun} {target.object_id}: {exc}") from exc
        except TradecloudApiError as exc:
            raise TransientError(f"{noun} {target.object_id}: {exc}") from exc

    async def resolve(self, event: StoredEvent) -> StoredEvent:
        """The event to hand to the sinks in place of the trigger."""
        obj = await self.fetch(event)
        if event.kind is EventKind.ORDER_FETCH:
            changes: dict[str, Any] = {
                "order_id": _text(obj, "id") or event.order_id,
                "purchase_order_number": _text(obj, "buyerOrder", "purchaseOrderNumber") or event.purchase_order_number,
            }
        else:
            changes = {
                "shipment_id": _text(obj, "id") or event.shipment_id,
                "shipment_number": _text(obj, "supplierShipment", "shipmentNumber") or event.shipment_number,
            }
        changes["last_updated_at"] = _text(obj, "meta", "lastUpdatedAt") or event.last_updated_at
        log.info("tradecloud_fetch_resolved", event_id=event.event_id, kind=str(event.kind))
        return dataclasses.replace(event, body=orjson.dumps(obj), content_type="application/json", **changes)
