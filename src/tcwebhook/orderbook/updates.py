"""The book update of a stored or fetched event, from its typed model (never from raw text)."""

from __future__ import annotations

from typing import Any

import orjson
import structlog

from tcwebhook.contract.kinds import EventKind
from tcwebhook.contract.models import FetchNotification, TradecloudModel
from tcwebhook.contract.parse import parse_stored
from tcwebhook.errors import InvalidBody
from tcwebhook.orderbook.book import update_of
from tcwebhook.orderbook.sql import PreparedUpdate

log = structlog.get_logger(__name__)


def model_data(model: TradecloudModel) -> dict[str, Any]:
    """A model as wire-named data: exact decimals, absent fields left out."""
    data: dict[str, Any] = model.model_dump(mode="python", by_alias=True, exclude_none=True)
    return data


def update_of_envelope(kind: EventKind, envelope: TradecloudModel) -> PreparedUpdate | None:
    """The update of an already parsed webhook (the receiver's parse, reused)."""
    if isinstance(envelope, FetchNotification):
        return None  # a trigger: the object comes when it is fetched
    found = update_of(kind, model_data(envelope))
    return None if found is None else PreparedUpdate.of(found)


def fetched_envelope(kind: EventKind, obj: dict[str, Any]) -> dict[str, Any] | None:
    """A fetched API object in envelope shape (``orderEvent`` / ``shipment``), or None for a bare trigger."""
    from tcwebhook.formats.typed import api_order_data, api_shipment_data

    if "id" not in obj:
        return None
    if kind is EventKind.ORDER_FETCH:
        return {"orderEvent": api_order_data(obj)}
    return {"shipment": api_shipment_data(obj)}


def update_of_body(kind: EventKind, content_type: str, body: bytes) -> PreparedUpdate | None:
    """The update of a stored body; None when it has none or cannot be read (logged, never raised:
    the event itself is kept whatever its book says)."""
    try:
        if kind.is_fetch:
            obj = orjson.loads(body) if body else {}
            data = fetched_envelope(kind, obj) if isinstance(obj, dict) else None
            found = None if data is None else update_of(kind, data)
        else:
            return update_of_envelope(kind, parse_stored(kind, content_type, body).envelope)
    except (InvalidBody, orjson.JSONDecodeError, ValueError) as exc:
        log.debug("orderbook.unreadable", kind=kind.value, error=str(exc)[:200])
        return None
    return None if found is None else PreparedUpdate.of(found)
