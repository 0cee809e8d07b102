"""From request body to typed envelope plus the facts the inbox indexes (runs on every request).

``parse_webhook`` is the receiver's single call: it checks the media type, validates the body
against the route's envelope model and pulls out ids, dedupe and routing keys. Its errors are
``UnsupportedMediaType`` (415) and ``InvalidBody`` (400), with a message naming the field.
``parse_stored`` gives sinks the same result for an event read back from the inbox.

A body that is an envelope (``eventName`` and a ``meta`` object of the known shape) whose event
object is under a key neither family knows is kind ``unknown``, not a 400: Tradecloud adds
event objects without notice and never resends a refused body. ``reclassify`` reads such a
stored body again with the models of this version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from tcwebhook.contract.drift import Finding, LazyDrift
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
    UnknownWebhook,
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
from tcwebhook.contract.txml import xml_to_data
from tcwebhook.errors import InvalidBody, UnsupportedMediaType

MediaFormat = Literal["json", "xml"]
Envelope = OrderWebhook | ShipmentWebhook | FetchNotification | UnknownWebhook
EventObject = (
    OrderEvent | SingleDeliveryOrderEvent | OrderDocumentsEvent | Shipment | FetchNotification | UnknownWebhook
)

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
_SUFFIXES: dict[str, MediaFormat] = {"json": "json", "xml": "xml"}
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
    # The typed body (``OrderWebhook``, ``ShipmentWebhook``, ``FetchNotification`` or
    # ``UnknownWebhook``); the facts above are what identifies a webhook, so two parses of one
    # body compare equal.
    envelope: Envelope = field(repr=False, compare=False)
    # What the models did not know (new fields, enum values, event names, event keys, numbers as
    # text), found when first asked for: a duplicate never is.
    findings: LazyDrift | None = field(default=None, compare=False, repr=False)

    @property
    def drift(self) -> tuple[Finding, ...]:
        return () if self.findings is None else self.findings()

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
    mime = mime.strip().lower()
    fmt = _MEDIA_TYPES.get(mime)
    if fmt is None and mime.startswith("application/"):
        # Structured syntax suffixes (RFC 6839): application/vnd.example+json is JSON.
        fmt = _SUFFIXES.get(mime.rpartition("+")[2]) if "+" in mime else None
    if fmt is None:
        raise UnsupportedMediaType(
            f"Content-Type {mime!r} is not supported: "
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
    envelope = _validate(ENVELOPES[route], body, media_format(content_type))
    if isinstance(envelope, UnknownWebhook):
        return _summarize_unknown(envelope, body)
    return _summarize(envelope, body)


def parse_stored(kind: EventKind, content_type: str, body: bytes) -> ParsedWebhook:
    """The typed form of an event read back from the inbox (fetch notifications included).

    The inbox record stays authoritative for ids and keys; this is for the typed model.
    """
    if kind.is_fetch:
        return _fetch(kind, body)
    if kind is EventKind.UNKNOWN:
        fmt = media_format(content_type)
        envelope = _unknown_envelope(body, fmt)
        if envelope is None:
            raise InvalidBody("body is not an envelope with an event object")
        return _summarize_unknown(envelope, body)
    return parse_webhook(ROUTE_OF_KIND[kind], body, content_type)


def reclassify(content_type: str, body: bytes) -> ParsedWebhook:
    """A stored body of kind ``unknown`` read again with this version's models: its kind now,
    ``unknown`` still when neither webhook family knows its event object."""
    found: ParsedWebhook | None = None
    problem: InvalidBody | None = None
    for route in ENVELOPES:
        try:
            parsed = parse_webhook(route, body, content_type)
        except InvalidBody as exc:
            problem = problem or exc
            continue
        if parsed.kind is not EventKind.UNKNOWN:
            return parsed
        found = found or parsed
    if found is None:
        assert problem is not None
        raise problem
    return found


def _validate(
    model: type[OrderWebhook] | type[ShipmentWebhook], body: bytes, fmt: MediaFormat
) -> OrderWebhook | ShipmentWebhook | UnknownWebhook:
    try:
        if fmt == "json":
            _bound_json_size(body)
            raw = body[3:] if body.startswith(_BOM) else body
            envelope = model.model_validate_json(raw)  # decides what is accepted, as for any body
            return _with_exact_numbers(model, raw, envelope) if _may_lose_digits(raw) else envelope
        return model.model_validate(xml_to_data(body, model))
    except ValidationError as exc:
        if _only_no_event(exc):
            unknown = _unknown_envelope(body, fmt)
            if unknown is not None:
                return unknown
            raise InvalidBody(
                describe_error(exc, body, fmt) + " (or an event object under a new key, beside a meta object)"
            ) from None
        raise InvalidBody(describe_error(exc, body, fmt)) from None


def _only_no_event(exc: ValidationError) -> bool:
    # Field errors stop the envelope's validator from running: "no_event" alone means eventName
    # and meta (if any) are of the known shape and no event key of either family is there.
    if exc.error_count() != 1:
        return False
    return exc.errors(include_url=False, include_input=False)[0]["type"] == "no_event"


def _unknown_envelope(body: bytes, fmt: MediaFormat) -> UnknownWebhook | None:
    """``body`` as an envelope of an unknown event object, None if it is not one."""
    try:
        if fmt == "json":
            _bound_json_size(body)
            raw = body[3:] if body.startswith(_BOM) else body
            envelope = UnknownWebhook.model_validate_json(raw)
            if _may_lose_digits(raw):
                envelope = _with_exact_numbers(UnknownWebhook, raw, envelope)
        else:
            envelope = UnknownWebhook.model_validate(xml_to_data(body, UnknownWebhook))
    except ValidationError:
        return None
    return envelope if envelope.unknown_keys else None


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


# pydantic's JSON parser reads every number as a binary float before it becomes a ``Decimal``, and a
# float keeps at most 15 significant digits exactly: a quantity or price with more would be
# rounded. Every such number shows as a run of 16 or more digits and dots in the body, so only
# then is the body read again by ``json`` with exact decimals (the fast parser still decides what
# is accepted; such a body costs about 2.3 times as much). The check, a byte translation and a
# substring search, costs a few percent of a parse; a per-value validator could not see digits
# the float has already dropped (1.00000000000000001 arrives as 1.0).
_DIGIT_RUNS = bytes(0x30 if 0x30 <= b <= 0x39 or b == 0x2E else 0x20 for b in range(256))
_LONG_RUN = b"0" * 16


def _may_lose_digits(raw: bytes) -> bool:
    return _LONG_RUN in raw.translate(_DIGIT_RUNS)


_M = TypeVar("_M", bound=BaseModel)


def _with_exact_numbers(model: type[_M], raw: bytes, envelope: _M) -> _M:
    """``envelope`` again from ``raw`` read with exact decimals; ``envelope`` itself should the
    other reading disagree (``json`` accepts a few things pydantic's parser refuses)."""
    exact = _exact_json(raw)
    if exact is None:
        return envelope
    try:
        return model.model_validate(exact)
    except ValidationError:
        return envelope


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _exact_json(raw: bytes) -> Any:
    """``raw`` parsed with numbers as exact ``Decimal``s; None if ``json`` cannot read it.

    A number whose exponent ``Decimal`` cannot hold is refused (400): the fast parser read it as
    some float, so accepting it would store a value the sender never sent.
    """
    try:
        return json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    except ArithmeticError:  # decimal.InvalidOperation, overflows
        raise InvalidBody("body has a number out of range (its exponent is too large to be exact)") from None


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


def _summarize(envelope: OrderWebhook | ShipmentWebhook, body: bytes) -> ParsedWebhook:
    body_key = envelope.body_key
    kind = BODY_KEY_KINDS[body_key]
    order_id = shipment_id = po_number = shipment_number = last_updated_at = None
    in_event_message_id: str | None = None
    if isinstance(envelope, OrderWebhook):
        event = envelope.event
        order_id = event.order_id
        last_updated_at = event.last_updated_at
        if event.meta is not None:
            in_event_message_id = event.meta.message_id
        if event.buyer_order is not None:
            po_number = event.buyer_order.purchase_order_number
        if po_number is None and isinstance(event, OrderDocumentsEvent) and event.order is not None:
            po_number = event.order.purchase_order_number
    else:
        shipment = envelope.event
        shipment_id = shipment.id
        if shipment.supplier_shipment is not None:
            shipment_number = shipment.supplier_shipment.shipment_number
        if shipment.meta is not None:
            last_updated_at = shipment.meta.last_updated_at
            in_event_message_id = shipment.meta.message_id
        po_number = _shipment_po_number(shipment)
    message_id = (envelope.meta.message_id if envelope.meta is not None else None) or in_event_message_id
    message_id = message_id or None  # an empty id identifies nothing
    dedupe_key = message_id or "sha256:" + hashlib.sha256(body).hexdigest()
    return ParsedWebhook(
        kind=kind,
        body_key=body_key,
        event_name=envelope.event_name,
        order_id=order_id or None,
        shipment_id=shipment_id or None,
        purchase_order_number=po_number or None,
        shipment_number=shipment_number or None,
        message_id=message_id,
        last_updated_at=last_updated_at,
        dedupe_key=dedupe_key,
        routing_key=routing_key(kind, order_id=order_id, shipment_id=shipment_id),
        envelope=envelope,
        findings=LazyDrift(envelope, envelope.event_name, _EVENT_KEYS),
    )


_EVENT_KEYS = ORDER_BODY_KEYS + SHIPMENT_BODY_KEYS


def _summarize_unknown(envelope: UnknownWebhook, body: bytes) -> ParsedWebhook:
    # Nothing here is read from the unknown object: what its fields mean is not known yet.
    message_id = envelope.meta.message_id or None
    return ParsedWebhook(
        kind=EventKind.UNKNOWN,
        body_key=envelope.body_key,
        event_name=envelope.event_name,
        order_id=None,
        shipment_id=None,
        purchase_order_number=None,
        shipment_number=None,
        message_id=message_id,
        last_updated_at=None,
        dedupe_key=message_id or "sha256:" + hashlib.sha256(body).hexdigest(),
        routing_key=None,
        envelope=envelope,
        findings=LazyDrift(envelope, envelope.event_name, _EVENT_KEYS),
    )


def _shipment_po_number(shipment: Shipment) -> str | None:
    # A shipment may serve several orders; the lowest number is a stable pick for search.
    numbers = {line.purchase_order_number for line in shipment.all_lines if line.purchase_order_number}
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
        envelope=note,
    )
