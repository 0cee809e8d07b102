"""From request body to typed envelope plus the facts the inbox indexes (runs on every request).

``parse_webhook`` is the receiver's single call: it checks the media type, validates the body
against the route's envelope model and pulls out ids, dedupe and routing keys. Its errors are
``UnsupportedMediaType`` (415) and ``InvalidBody`` (400), with a message naming the field.
``parse_stored`` gives sinks the same result for an event read back from the inbox.

A JSON body is first checked with the plain validator of ``contract.plain`` (the models' rules,
no model instances); the typed envelope is then built only when someone asks for it. Anything
that validator refuses goes through the model, whose verdict and message are the ones given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from pydantic import ValidationError

from tcwebhook.contract.kinds import EventKind, routing_key
from tcwebhook.contract.models import (
    ENVELOPES,
    FetchNotification,
    OrderDocumentsEvent,
    OrderEvent,
    OrderWebhook,
    Route,
    Shipment,
    ShipmentWebhook,
    SingleDeliveryOrderEvent,
)
from tcwebhook.contract.names import (
    BODY_KEY_KINDS,
    ORDER_BODY_KEYS,
    ORDER_FETCH_EVENT,
    SHIPMENT_BODY_KEYS,
    SHIPMENT_FETCH_EVENT,
    canonical_event_name,
    is_documented,
)
from tcwebhook.contract.plain import plain_validator, single_event_key
from tcwebhook.contract.txml import xml_to_data
from tcwebhook.errors import InvalidBody, UnsupportedMediaType

MediaFormat = Literal["json", "xml"]
Envelope = OrderWebhook | ShipmentWebhook | FetchNotification
EventObject = OrderEvent | SingleDeliveryOrderEvent | OrderDocumentsEvent | Shipment | FetchNotification

ROUTE_OF_KIND: dict[EventKind, Route] = {
    EventKind.ORDER: "orders",
    EventKind.ORDER_DOCUMENTS: "orders",
    EventKind.ORDER_FETCH: "orders",
    EventKind.SHIPMENT: "shipments",
    EventKind.SHIPMENT_FETCH: "shipments",
}

_MEDIA_TYPES: dict[str, MediaFormat] = {
    "application/json": "json",
    "application/xml": "xml",
    "text/xml": "xml",
}
_UTF8 = ("utf-8", "utf8")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ParsedWebhook:
    """A validated webhook body and what the inbox stores beside it."""

    kind: EventKind
    body_key: str  # the event key present: orderEvent, shipment, shipmentEvent, ...
    event_name: str  # as received
    order_id: str | None
    shipment_id: str | None
    purchase_order_number: str | None
    shipment_number: str | None
    message_id: str | None
    last_updated_at: str | None  # event lastUpdatedAt / shipment meta.lastUpdatedAt, as received
    dedupe_key: str  # message id, else "sha256:<hex of the raw body>"
    routing_key: str | None  # per-key FIFO key, see kinds.routing_key
    # The typed envelope, or how to build it on first use (the receiver never needs it).
    _envelope: Envelope | Callable[[], Envelope] = field(repr=False, compare=False)

    @property
    def envelope(self) -> Envelope:
        """The typed body (``OrderWebhook``, ``ShipmentWebhook`` or ``FetchNotification``)."""
        value = self._envelope
        if callable(value):
            value = value()
            object.__setattr__(self, "_envelope", value)
        return value

    @property
    def event(self) -> EventObject:
        """The event object itself (``orderEvent``, ``shipment``, …)."""
        return self.envelope.event

    @property
    def canonical_event_name(self) -> str:
        """The current name for a renamed historic one (e.g. ``ShipmentDespatchedBySupplier``)."""
        return canonical_event_name(self.event_name)

    @property
    def is_documented(self) -> bool:
        """Whether the event name is in today's documented lists (unknown names are valid too)."""
        return is_documented(self.event_name)


@lru_cache(maxsize=64)
def media_format(content_type: str | None) -> MediaFormat:
    """``json`` or ``xml`` for a Content-Type header; raises ``UnsupportedMediaType``."""
    if content_type is None or not content_type.strip():
        raise UnsupportedMediaType(
            "Content-Type is missing: send application/json or application/xml"
        )
    mime, _, params = content_type.partition(";")
    fmt = _MEDIA_TYPES.get(mime.strip().lower())
    if fmt is None:
        raise UnsupportedMediaType(
            f"Content-Type {mime.strip()!r} is not supported: "
            "send application/json, application/xml or text/xml"
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').strip().lower()
            if charset not in _UTF8:
                raise UnsupportedMediaType(f"charset {charset!r} is not supported: send UTF-8")
    return fmt


def parse_webhook(route: Route, body: bytes, content_type: str | None) -> ParsedWebhook:
    """Validate a POSTed webhook body for ``route`` ("orders" or "shipments").

    Raises ``UnsupportedMediaType`` for a Content-Type other than JSON/XML in UTF-8 and
    ``InvalidBody`` for a body that is not a webhook of this route's family.
    """
    model = ENVELOPES[route]
    fmt = media_format(content_type)
    if fmt == "json":
        _bound_json_size(body)
        data = body[3:] if body.startswith(_BOM) else body
        plain = _PLAIN[route]
        if plain is not None:
            try:
                fields = plain.validate_json(data)
            except ValidationError:
                fields = None
            body_key = single_event_key(fields, model, _BODY_KEYS[route], route) if fields else None
            if fields is not None and body_key is not None:
                return _summarize(route, fields, body_key, body, lambda: model.model_validate_json(data))
    envelope = _validate(model, body, fmt)
    return _summarize(route, envelope, envelope.body_key, body, envelope)


def parse_stored(kind: EventKind, content_type: str, body: bytes) -> ParsedWebhook:
    """The typed form of an event read back from the inbox (fetch notifications included).

    The inbox record stays authoritative for ids and keys; this is for the typed model.
    """
    if kind.is_fetch:
        return _fetch(kind, body)
    route = ROUTE_OF_KIND[kind]
    envelope = _validate(ENVELOPES[route], body, media_format(content_type))
    return _summarize(route, envelope, envelope.body_key, body, envelope)


_PLAIN = {route: plain_validator(model) for route, model in ENVELOPES.items()}
_BODY_KEYS: dict[Route, tuple[str, ...]] = {"orders": ORDER_BODY_KEYS, "shipments": SHIPMENT_BODY_KEYS}


def _validate(
    model: type[OrderWebhook] | type[ShipmentWebhook], body: bytes, fmt: MediaFormat
) -> OrderWebhook | ShipmentWebhook:
    try:
        if fmt == "json":
            _bound_json_size(body)
            return model.model_validate_json(body[3:] if body.startswith(_BOM) else body)
        return model.model_validate(xml_to_data(body, model))
    except ValidationError as exc:
        raise InvalidBody(describe_error(exc, body, fmt)) from None


# A real webhook (500 lines at most) has some tens of thousands of JSON values. These bounds stop a
# body of millions of tiny values from costing seconds of CPU and a gigabyte of objects: counting
# bytes is C-speed and runs before any object is built.
MAX_JSON_CONTAINERS = 200_000  # objects + arrays, counted as '{' and '[' bytes
MAX_JSON_SEPARATORS = 1_000_000  # values in containers, counted as ',' bytes


def _bound_json_size(body: bytes) -> None:
    if len(body) <= min(MAX_JSON_CONTAINERS, MAX_JSON_SEPARATORS):
        return  # each value counted takes a byte: a body this short cannot exceed the bounds
    if body.count(b"{") + body.count(b"[") > MAX_JSON_CONTAINERS or body.count(b",") > MAX_JSON_SEPARATORS:
        raise InvalidBody(
            f"body has too many JSON values (more than {MAX_JSON_CONTAINERS} objects/arrays or "
            f"{MAX_JSON_SEPARATORS} items); a webhook body is far smaller"
        )


def describe_error(exc: ValidationError, body: bytes = b"", fmt: MediaFormat = "json") -> str:
    """One sentence for a validation error: where (as a JSON path) and what."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    loc = first["loc"]
    kind = first["type"]
    if kind == "json_invalid":
        if not body.strip():
            return "body is empty"
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            return f"body is not valid UTF-8 (byte {bad.start})"
        return f"body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}"
    if not loc and kind in ("model_type", "model_attributes_type", "dict_type"):
        return "body is not a JSON object"
    where = _path(loc)
    if kind == "missing":
        message = f"{where} is missing"
    elif where:
        message = f"{where}: {first['msg']}"
    else:
        message = first["msg"]
    more = len(errors) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return message


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _get(node: Any, name: str) -> Any:
    """Attribute ``name`` of a validated object: a model, or plain ``(fields, extra, set)``."""
    if node is None:
        return None
    if type(node) is tuple:
        return node[0].get(name)
    return getattr(node, name)


# Attribute name of each event key (``orderEvent`` -> ``order_event``) in the envelope models.
_EVENT_ATTRS = {
    key: name
    for model in ENVELOPES.values()
    for name, info in model.model_fields.items()
    if (key := info.serialization_alias or info.alias or name) in BODY_KEY_KINDS
}


def _summarize(
    route: Route,
    envelope: Any,
    body_key: str,
    body: bytes,
    typed: Envelope | Callable[[], Envelope],
) -> ParsedWebhook:
    kind = BODY_KEY_KINDS[body_key]
    event = _get(envelope, _EVENT_ATTRS[body_key])
    order_id = shipment_id = po_number = shipment_number = last_updated_at = None
    in_event_message_id: str | None = None
    if route == "orders":
        order_id = _get(event, "order_id")
        last_updated_at = _get(event, "last_updated_at")
        in_event_message_id = _get(_get(event, "meta"), "message_id")
        po_number = _get(_get(event, "buyer_order"), "purchase_order_number")
        if po_number is None and kind is EventKind.ORDER_DOCUMENTS:
            po_number = _get(_get(event, "order"), "purchase_order_number")
    else:
        shipment_id = _get(event, "id")
        shipment_number = _get(_get(event, "supplier_shipment"), "shipment_number")
        meta = _get(event, "meta")
        last_updated_at = _get(meta, "last_updated_at")
        in_event_message_id = _get(meta, "message_id")
        po_number = _shipment_po_number(event)
    message_id = _get(_get(envelope, "meta"), "message_id") or in_event_message_id
    message_id = message_id or None  # an empty id identifies nothing
    dedupe_key = message_id or "sha256:" + hashlib.sha256(body).hexdigest()
    return ParsedWebhook(
        kind=kind,
        body_key=body_key,
        event_name=_get(envelope, "event_name"),
        order_id=order_id or None,
        shipment_id=shipment_id or None,
        purchase_order_number=po_number or None,
        shipment_number=shipment_number or None,
        message_id=message_id,
        last_updated_at=last_updated_at,
        dedupe_key=dedupe_key,
        routing_key=routing_key(kind, order_id=order_id, shipment_id=shipment_id),
        _envelope=typed,
    )


def _shipment_po_number(shipment: Any) -> str | None:
    # A shipment may serve several orders; the lowest number is a stable pick for search.
    lines = list(_get(shipment, "lines") or ())
    for carrier in _get(shipment, "load_carriers") or ():
        lines.extend(_get(carrier, "lines") or ())
    numbers = {n for n in (_get(line, "purchase_order_number") for line in lines) if n}
    return min(numbers) if numbers else None


def _fetch(kind: EventKind, body: bytes) -> ParsedWebhook:
    try:
        note = FetchNotification.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidBody(describe_error(exc, body)) from None
    if kind == EventKind.ORDER_FETCH:
        name, key = ORDER_FETCH_EVENT, "orderId" if note.order_id else "legacyOrderId"
        key_value = routing_key(kind, order_id=note.order_id, shipment_id=None)
        if key_value is None and note.legacy_order_id:
            key_value = f"order:legacy:{note.legacy_order_id}"
    else:
        name, key = SHIPMENT_FETCH_EVENT, "shipmentId"
        key_value = routing_key(kind, order_id=None, shipment_id=note.shipment_id)
    return ParsedWebhook(
        kind=kind,
        body_key=key,
        event_name=name,
        order_id=note.order_id or None,
        shipment_id=note.shipment_id or None,
        purchase_order_number=None,
        shipment_number=None,
        message_id=None,
        last_updated_at=None,
        dedupe_key="sha256:" + hashlib.sha256(body).hexdigest(),
        routing_key=key_value,
        _envelope=note,
    )
