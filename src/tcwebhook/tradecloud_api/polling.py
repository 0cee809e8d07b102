"""Shapes of the Tradecloud polling API: ``{data[], total, lastUpdatedAt}`` pages of objects.

``POST order-search/poll``, ``order-search/poll/single-delivery`` and ``shipment/poll`` take
``{filters: {lastUpdatedAfter, …}, offset, limit ≤ 100}``. Orders carry ``lastUpdatedAt`` and
``version`` at the top (like ``GET /order/{id}``), shipments ``meta.lastUpdatedAt``; both places
are read for either, since the polling docs do not pin it down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tcwebhook.errors import TradecloudApiError

ORDER_POLL = "/order-search/poll"
ORDER_POLL_SINGLE_DELIVERY = "/order-search/poll/single-delivery"
SHIPMENT_POLL = "/shipment/poll"
MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class PollPage:
    data: tuple[dict[str, Any], ...]
    total: int | None
    last_updated_at: str | None

    @classmethod
    def from_api(cls, answer: dict[str, Any]) -> PollPage:
        data = answer.get("data", [])
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise TradecloudApiError("Tradecloud poll: data is not a list of objects")
        total = answer.get("total")
        last = answer.get("lastUpdatedAt")
        return cls(
            tuple(data),
            total if isinstance(total, int) and not isinstance(total, bool) else None,
            last if isinstance(last, str) and last else None,
        )


def object_id(obj: dict[str, Any]) -> str | None:
    for name in ("id", "orderId", "shipmentId"):
        value = obj.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def object_updated_at(obj: dict[str, Any]) -> str | None:
    value = obj.get("lastUpdatedAt")
    if not (isinstance(value, str) and value):
        meta = obj.get("meta")
        value = meta.get("lastUpdatedAt") if isinstance(meta, dict) else None
    return value if isinstance(value, str) and value else None


def object_version(obj: dict[str, Any]) -> int | None:
    value = obj.get("version")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
