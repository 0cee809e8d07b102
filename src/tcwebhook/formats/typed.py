"""The typed form of an event or a book entry as plain data, the same for a JSON and a tXML body.

Values come from the contract models, not from the body's text: numbers are exact ``Decimal``
(whole ones ``int``), flags are ``bool``, dates are the ISO text received. Keys are Tradecloud's
wire names; fields a body did not carry are left out, so an explicit ``null`` in JSON and a
missing tXML element give the same data.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from tcwebhook.contract.kinds import EventKind
from tcwebhook.contract.models import OrderEvent, Shipment, TradecloudModel
from tcwebhook.contract.parse import parse_stored
from tcwebhook.errors import InvalidBody, PermanentError

if TYPE_CHECKING:
    from tcwebhook.sinks.event import EventLike

Data = dict[str, Any]

# The keys of a webhook envelope that hold the order or shipment object.
ORDER_KEYS = ("orderEvent", "singleDeliveryOrderEvent", "simpleOrderEvent", "orderDocumentsEvent")
SHIPMENT_KEYS = ("shipment", "shipmentEvent")


def model_data(model: TradecloudModel) -> Data:
    """A model as wire-named data: exact decimals, absent fields left out."""
    data: Data = model.model_dump(mode="python", by_alias=True, exclude_none=True)
    return data


def api_order_data(obj: Data) -> Data:
    """An order as ``GET /order/{id}`` answers it, in the shape of an ``orderEvent`` object."""
    try:
        order = OrderEvent.model_validate({**obj, "orderId": obj.get("orderId") or obj.get("id")})
    except ValidationError as exc:
        raise InvalidBody(f"the fetched order does not match the contract ({exc.error_count()} errors)") from None
    return model_data(order)


def api_shipment_data(obj: Data) -> Data:
    try:
        return model_data(Shipment.model_validate(obj))
    except ValidationError as exc:
        raise InvalidBody(f"the fetched shipment does not match the contract ({exc.error_count()} errors)") from None


def event_data(event: EventLike) -> Data:
    """The typed envelope of ``event``: ``{"eventName": …, "orderEvent" | "shipment" | …: {…}}``.

    A GET trigger the Tradecloud API has resolved carries the fetched object; it is given under
    ``orderEvent`` / ``shipment`` so everything downstream reads one shape. Raises
    ``PermanentError`` when the stored body cannot be read (it never changes, so a retry cannot help).
    """
    try:
        if event.kind.is_fetch:
            return _fetched_data(event)
        return model_data(parse_stored(event.kind, event.content_type, event.body).envelope)
    except InvalidBody as exc:
        raise PermanentError(f"the event body cannot be read as the contract's model: {exc}") from None


def _fetched_data(event: EventLike) -> Data:
    try:
        obj = orjson.loads(event.body) if event.body else {}
    except orjson.JSONDecodeError:
        raise InvalidBody("the body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise InvalidBody("the body is not a JSON object")
    if "id" not in obj:  # a trigger nobody resolved: only the id
        return {"eventName": event.event_name, **{k: v for k, v in obj.items() if v is not None}}
    if event.kind is EventKind.ORDER_FETCH:
        return {"eventName": event.event_name, "orderEvent": api_order_data(obj)}
    return {"eventName": event.event_name, "shipment": api_shipment_data(obj)}


def order_object(envelope: Data) -> Data | None:
    """The order object of a typed envelope (any of the order event keys), or None."""
    for key in ORDER_KEYS:
        value = envelope.get(key)
        if isinstance(value, dict):
            return value
    return None


def shipment_object(envelope: Data) -> Data | None:
    for key in SHIPMENT_KEYS:
        value = envelope.get(key)
        if isinstance(value, dict):
            return value
    return None


def decimal_text(value: Decimal | int | float, decimal_point: str = ".") -> str:
    """The shortest exact text of a number (``12.5``, ``100``, ``0.0000001``), never an exponent."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, int):
        text = str(value)
    elif value.is_finite() and value == value.to_integral_value():
        text = str(int(value))
    else:
        # Not normalize(): it rounds to the context's 28 digits.
        text = format(value, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    return text if decimal_point == "." else text.replace(".", decimal_point)


def _fragment(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(decimal_text(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_bytes(data: Any) -> bytes:
    """``data`` as indented JSON; decimals are written as exact JSON numbers, not floats."""
    out: bytes = orjson.dumps(data, default=_fragment, option=orjson.OPT_INDENT_2)
    return out + b"\n"
