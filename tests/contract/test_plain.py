from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tcwebhook.contract.kinds import EventKind
from tcwebhook.contract.models import ENVELOPES, OrderWebhook, ShipmentWebhook
from tcwebhook.contract.names import ORDER_BODY_KEYS
from tcwebhook.contract.parse import ParsedWebhook, parse_stored, parse_webhook
from tcwebhook.contract.plain import plain_validator, single_event_key
from tcwebhook.errors import InvalidBody

from .conftest import EXAMPLES, dumps, example, example_bytes

JSON = "application/json"
KIND_OF_ROUTE = {"orders": EventKind.ORDER, "shipments": EventKind.SHIPMENT}
# Values put in place of every value of an example, one at a time.
REPLACEMENTS: tuple[Any, ...] = (None, 0, 7, 1.5, -2.25e3, 1e400, "", "x", "12.5", "0012", True, [], [1], {}, {"a": 1})


def model_verdict(route: str, body: bytes) -> ParsedWebhook | str:
    """What the model alone makes of a body: the facts, or the 400 message."""
    try:
        return parse_stored(KIND_OF_ROUTE[route], JSON, body)
    except InvalidBody as exc:
        return str(exc)


def fast_verdict(route: str, body: bytes) -> ParsedWebhook | str:
    try:
        return parse_webhook(route, body, JSON)  # type: ignore[arg-type]
    except InvalidBody as exc:
        return str(exc)


def mutations(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, replacement) for every value below ``value`` and every replacement."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        for replacement in REPLACEMENTS:
            yield (*path, key), replacement
        yield from mutations(child, (*path, key))


def replaced(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = json.loads(json.dumps(data))
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


class TestPlainValidator:
    """The plain validator exists for both envelopes and decides like the model."""

    @pytest.mark.parametrize("model", [OrderWebhook, ShipmentWebhook])
    def test_built_for_both_envelopes(self, model: type[OrderWebhook] | type[ShipmentWebhook]) -> None:
        assert plain_validator(model) is not None

    def test_same_facts_and_envelope_as_the_model(self, example_name: str) -> None:
        route, _ = EXAMPLES[example_name]
        body = example_bytes(example_name)
        fast = parse_webhook(route, body, JSON)
        slow = parse_stored(fast.kind, JSON, body)
        assert fast == slow
        assert fast.envelope.model_dump() == slow.envelope.model_dump()
        assert fast.envelope is fast.envelope  # built once

    def test_numeric_string_in_a_decimal_field_still_accepted(self) -> None:
        data = example("order")
        data["orderEvent"]["lines"][0]["buyerLine"]["deliverySchedule"][0]["quantity"] = "12.5"
        validator = plain_validator(OrderWebhook)
        assert validator is not None
        with pytest.raises(ValueError, match="quantity"):
            validator.validate_json(dumps(data))  # stricter than the model...
        parsed = parse_webhook("orders", dumps(data), JSON)  # ...so the model decides
        assert parsed.envelope.order_event.lines[0].buyer_line.delivery_schedule[0].quantity == 12.5  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"orderEvent": None}, "must be an object, not null"),
            ({"singleDeliveryOrderEvent": {"orderId": "o"}}, "more than one event object"),
            ({"shipment": {"id": "s"}}, "shipments webhook"),
        ],
    )
    def test_event_object_rules_left_to_the_model(self, change: dict[str, Any], message: str) -> None:
        data = {**example("order"), **change}
        validator = plain_validator(OrderWebhook)
        assert validator is not None
        fields = validator.validate_json(dumps(data))
        assert single_event_key(fields, OrderWebhook, ORDER_BODY_KEYS, "orders") is None
        with pytest.raises(InvalidBody, match=message):
            parse_webhook("orders", dumps(data), JSON)

    def test_byte_order_mark(self) -> None:
        body = b"\xef\xbb\xbf" + example_bytes("order")
        assert parse_webhook("orders", body, JSON) == parse_stored(EventKind.ORDER, JSON, body)


class TestNeverMoreLenient:
    """Every value of every example replaced by values of other shapes: same verdict as the model."""

    def test_mutations(self, example_name: str) -> None:
        route, _ = EXAMPLES[example_name]
        data = example(example_name)
        checked = 0
        for path, value in mutations(data):
            try:
                body = json.dumps(replaced(data, path, value)).encode()
            except ValueError:  # 1e400 is not JSON for the standard library
                body = json.dumps(replaced(data, path, "INF")).encode().replace(b'"INF"', b"1e400")
            assert fast_verdict(route, body) == model_verdict(route, body), (path, value)
            checked += 1
        assert checked > 1000

    @pytest.mark.parametrize("route", sorted(ENVELOPES))
    def test_not_an_object(self, route: str) -> None:
        for body in (b"[]", b"1", b'"x"', b"null", b"{", b"", b'{"eventName": ""}', b'{"eventName": 5}'):
            assert fast_verdict(route, body) == model_verdict(route, body)
