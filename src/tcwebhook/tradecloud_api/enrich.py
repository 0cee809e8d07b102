"""Enrichment: an order event carries only its affected lines; add the whole current order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import PermanentError, TradecloudApiError, TradecloudNotFound, TransientError
from tcwebhook.inbox.base import StoredEvent
from tcwebhook.tradecloud_api.coalesce import Coalescer
from tcwebhook.tradecloud_api.fetch import ApiObject, received_epoch

if TYPE_CHECKING:
    from tcwebhook.tradecloud_api.client import TradecloudClient

ENRICHED_KINDS = frozenset({EventKind.ORDER})
EXTRA_KEY = "full_order"
_EVENT_KEYS = ("orderEvent", "singleDeliveryOrderEvent", "simpleOrderEvent", "orderDocumentsEvent")


def _order_id(event: StoredEvent) -> str | None:
    if event.order_id:
        return event.order_id
    try:
        body = orjson.loads(event.body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    for key in _EVENT_KEYS:
        inner = body.get(key)
        if isinstance(inner, dict) and isinstance(inner.get("orderId"), str):
            return str(inner["orderId"])
    return None


class Enricher:
    """Fetches the full order for a sink's ``enrich`` option (shared fetches per order)."""

    def __init__(
        self,
        client: TradecloudClient,
        *,
        coalescer: Coalescer[ApiObject] | None = None,
        kinds: frozenset[EventKind] = ENRICHED_KINDS,
    ) -> None:
        self._client = client
        self._coalescer = coalescer if coalescer is not None else Coalescer()
        self._kinds = kinds

    def wants(self, event: StoredEvent) -> bool:
        return event.kind in self._kinds

    async def full_order(self, event: StoredEvent) -> ApiObject:
        """The current order of ``event``; Permanent/TransientError when it cannot be had."""
        order_id = _order_id(event)
        if order_id is None:
            raise PermanentError(f"event {event.event_id} names no orderId to enrich with")
        try:
            return await self._coalescer.get(
                f"order:{order_id}",
                received_epoch(event),
                lambda: self._client.get_order(order_id),
            )
        except TradecloudNotFound as exc:
            raise PermanentError(f"order {order_id}: {exc}") from exc
        except TradecloudApiError as exc:
            raise TransientError(f"order {order_id}: {exc}") from exc

    async def extras(self, event: StoredEvent) -> dict[str, Any]:
        """``{"full_order": ...}`` for events this enricher wants, else ``{}``."""
        if not self.wants(event):
            return {}
        return {EXTRA_KEY: await self.full_order(event)}
