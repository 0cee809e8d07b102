"""Typed values are the same whether a body came as JSON or as tXML, and numbers stay exact.

tXML carries every value as text; only the models say which text is a boolean or a number. A
documented field the models do not declare came out as the string ``"false"``, which Python reads
as true. The check here: the typed model of a body in tXML equals the typed model of the same body
in JSON, on every contract example and on every body the simulator builds, and quantities and
prices keep every digit on both paths.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tcwebhook.contract.models import Route
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.contract.txml import data_to_xml
from tcwebhook.simulator.calls import BodyFormat, encode
from tcwebhook.simulator.samples import Family, SampleFactory, parse_selection

pytestmark = pytest.mark.reliability

DATA = Path(__file__).parent.parent / "contract" / "data"
EXAMPLES = sorted(DATA.glob("*.json"))
MIX = parse_selection("mix")


def _route(body: dict[str, Any]) -> Route:
    return "shipments" if "shipment" in body or "shipmentEvent" in body else "orders"


def _both(route: Route, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    from_json = parse_webhook(route, json.dumps(data).encode(), "application/json").envelope
    from_xml = parse_webhook(route, data_to_xml(data), "application/xml").envelope
    return from_json.model_dump(), from_xml.model_dump()


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def _mismatches(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    left, right = dict(_leaves(a)), dict(_leaves(b))
    return [
        f"{k}: json {left.get(k)!r} / txml {right.get(k)!r}"
        for k in sorted(set(left) | set(right))
        if left.get(k, "<absent>") != right.get(k, "<absent>") or type(left.get(k)) is not type(right.get(k))
    ]


class TestSameTypedModel:
    """tXML and JSON of one body give equal typed models (values and their types)."""

    @pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
    def test_contract_examples(self, path: Path) -> None:
        data = json.loads(path.read_text())
        from_json, from_xml = _both(_route(data), data)
        assert _mismatches(from_json, from_xml) == []

    @pytest.mark.parametrize(("family", "event_name"), MIX, ids=[f"{f}-{n}" for f, n in MIX])
    def test_simulator_bodies(self, family: Family, event_name: str) -> None:
        event = SampleFactory(seed=5).event(family, event_name)
        route: Route = "shipments" if family is Family.SHIPMENT else "orders"
        as_json, as_xml = encode(event, BodyFormat.JSON), encode(event, BodyFormat.TXML)
        from_json = parse_webhook(route, *as_json).envelope.model_dump()
        from_xml = parse_webhook(route, *as_xml).envelope.model_dump()
        assert _mismatches(from_json, from_xml) == []

    def test_documented_indicators_are_booleans(self) -> None:
        line_flags = {
            "confirmed": False,
            "requestReconfirmation": False,
            "shipped": False,
            "delivered": False,
            "completed": False,
            "cancelled": False,
            "noDeliveryExpected": False,
            "proposeWhenAccepted": False,
        }
        supplier_flags = {"accepted": True, "rejected": False, "shipped": False, "delivered": False, "cancelled": False}
        data = {
            "eventName": "OrderLinesAcceptedBySupplier",
            "orderEvent": {
                "orderId": "o-1",
                "buyerOrder": {"indicators": {k: False for k in line_flags if k != "noDeliveryExpected"}},
                "supplierOrder": {"indicators": supplier_flags},
                "lines": [
                    {
                        "id": "l-1",
                        "buyerLine": {"indicators": line_flags},
                        "supplierLine": {"indicators": supplier_flags},
                        "indicators": {"deliveryOverdue": False},
                    }
                ],
            },
        }
        from_json, from_xml = _both("orders", data)
        assert _mismatches(from_json, from_xml) == []
        line = from_xml["orderEvent"]["lines"][0]
        assert line["buyerLine"]["indicators"] == line_flags
        assert line["supplierLine"]["indicators"] == supplier_flags
        assert from_xml["orderEvent"]["supplierOrder"]["indicators"] == supplier_flags

    def test_undeclared_flags_are_not_truthy_strings(self) -> None:
        data = {
            "eventName": "OrderLinesAcceptedBySupplier",
            "orderEvent": {"orderId": "o-1", "lines": [{"id": "l-1", "indicators": {"somethingNew": False}}]},
        }
        from_json, from_xml = _both("orders", data)
        assert from_xml["orderEvent"]["lines"][0]["indicators"]["somethingNew"] is False
        assert _mismatches(from_json, from_xml) == []


class TestExactNumbers:
    """Quantities and prices are exact ``Decimal``s; whole numbers dump as ``int``."""

    def _order(self, quantity: str, price: str) -> tuple[bytes, bytes]:
        as_json = (
            '{"eventName": "OrderIssuedByBuyer", "orderEvent": {"orderId": "o-1", "lines": [{"id": "l-1",'
            ' "deliverySchedule": [{"position": "1", "date": "2025-01-01", "quantity": ' + quantity + "}],"
            ' "prices": {"netPrice": {"priceInTransactionCurrency": {"value": ' + price + ', "currencyIso": "EUR"}}}'
            "}]}}"
        ).encode()
        as_xml = (
            "<?xml version='1.0' encoding='UTF-8'?><webhook><eventName>OrderIssuedByBuyer</eventName><orderEvent>"
            "<orderId>o-1</orderId><line><id>l-1</id><deliveryScheduleLine><position>1</position>"
            f"<date>2025-01-01</date><quantity>{quantity}</quantity></deliveryScheduleLine><prices><netPrice>"
            f"<priceInTransactionCurrency><value>{price}</value><currencyIso>EUR</currencyIso>"
            "</priceInTransactionCurrency></netPrice></prices></line></orderEvent></webhook>"
        ).encode()
        return as_json, as_xml

    @pytest.mark.parametrize(
        ("quantity", "price", "dumped_quantity", "dumped_price"),
        [
            ("100", "1234.123456789012345678", 100, Decimal("1234.123456789012345678")),
            ("100.0", "0.1", 100, Decimal("0.1")),
            ("12345678901234567890.5", "1e2", Decimal("12345678901234567890.5"), 100),
            ("0.000000000000000000001", "-7.25", Decimal("1E-21"), Decimal("-7.25")),
            # a float keeps this as 1.0: the digits are gone before any validator could see them
            ("1.00000000000000001", "2.50", Decimal("1.00000000000000001"), Decimal("2.5")),
        ],
    )
    def test_exact_on_both_paths(self, quantity: str, price: str, dumped_quantity: Any, dumped_price: Any) -> None:
        bodies = self._order(quantity, price)
        for body, content_type in zip(bodies, ("application/json", "application/xml"), strict=True):
            envelope = parse_webhook("orders", body, content_type).envelope
            line = envelope.event.lines[0]  # type: ignore[union-attr,index]
            assert line.delivery_schedule[0].quantity == Decimal(quantity), content_type
            assert line.prices.net_price.price_in_transaction_currency.value == Decimal(price), content_type
            dumped = envelope.model_dump()["orderEvent"]["lines"][0]
            q = dumped["deliverySchedule"][0]["quantity"]
            p = dumped["prices"]["netPrice"]["priceInTransactionCurrency"]["value"]
            assert (q, type(q)) == (dumped_quantity, type(dumped_quantity)), content_type
            assert (p, type(p)) == (dumped_price, type(dumped_price)), content_type
            as_json = json.loads(envelope.model_dump_json())["orderEvent"]["lines"][0]
            if isinstance(dumped_quantity, int):
                assert as_json["deliverySchedule"][0]["quantity"] == dumped_quantity
                assert isinstance(as_json["deliverySchedule"][0]["quantity"], int)
