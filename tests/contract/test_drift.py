"""What the models did not know, named once per body: fields, enum values, event names and keys."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from tcwebhook.contract import drift
from tcwebhook.contract.drift import MAX_DETAIL, MAX_FINDINGS, Finding
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.errors import InvalidBody


def drift_of(route: str, body: dict[str, object]) -> set[Finding]:
    return set(parse_webhook(route, orjson.dumps(body), "application/json").drift)  # type: ignore[arg-type]


class TestFindings:
    """Each kind of unknown is found where it is, with a generic path."""

    def test_known_body_has_none(self) -> None:
        body = {"eventName": "OrderLinesUpdatedByBuyer", "orderEvent": {"orderId": "o", "lines": [
            {"id": "l1", "buyerLine": {"position": "1"}, "lineType": "Item"}]}, "meta": {"messageId": "m"}}
        assert drift_of("orders", body) == set()

    def test_unknowns(self) -> None:
        body = {
            "eventName": "OrderLinesTeleportedByBuyer",
            "orderEvent": {
                "orderId": "o",
                "carbonFootprint": {"kg": 3},
                "lines": [{"id": "l1", "lineType": "Subscription", "newFlag": True},
                          {"id": "l2", "lineType": "Item", "newFlag": False}],
            },
            "orderTeleportEvent": {"x": 1},
            "meta": {"messageId": "m", "priority": "high"},
        }
        assert drift_of("orders", body) == {
            Finding("event_name", "OrderLinesTeleportedByBuyer"),
            Finding("event_key", "orderTeleportEvent"),
            Finding("field", "orderEvent.carbonFootprint"),
            Finding("field", "orderEvent.lines[].newFlag"),  # once, however many lines carry it
            Finding("enum_value", "orderEvent.lines[].lineType=Subscription"),
            Finding("field", "meta.priority"),
        }

    def test_shipment_status_value(self) -> None:
        body = {"eventName": "ShipmentIssuedBySupplier",
                "shipment": {"id": "s", "status": {"processStatus": "Lost"}}}
        assert drift_of("shipments", body) == {Finding("enum_value", "shipment.status.processStatus=Lost")}

    def test_renamed_and_opt_in_names_are_known(self) -> None:
        for name in ("ShipmentDespatchedBySupplier", "OrderSynced", "OrderLinesItemDetailsChangedBySupplier"):
            route = "shipments" if name.startswith("Shipment") else "orders"
            key = "shipment" if route == "shipments" else "orderEvent"
            assert drift_of(route, {"eventName": name, key: {}}) == set()

    def test_bounded(self) -> None:
        event = {f"new{i}{'x' * 300}": i for i in range(200)}
        found = parse_webhook("orders", orjson.dumps({"eventName": "OrderIssuedByBuyer", "orderEvent": event}),
                              "application/json").drift
        assert len(found) == MAX_FINDINGS
        assert all(len(f.detail) <= MAX_DETAIL for f in found)


class TestLazy:
    """The walk runs when the findings are first asked for, once: a duplicate never asks."""

    def test_walked_once_on_first_use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        walks: list[str] = []
        real = drift.find_drift

        def counted(
            envelope: object, event_name: str, event_keys: tuple[str, ...], **options: Any
        ) -> tuple[Finding, ...]:
            walks.append(event_name)
            return real(envelope, event_name, event_keys, **options)  # type: ignore[arg-type]

        monkeypatch.setattr(drift, "find_drift", counted)
        body = {"eventName": "OrderLinesTeleportedByBuyer", "orderEvent": {"orderId": "o"}}
        parsed = parse_webhook("orders", orjson.dumps(body), "application/json")
        assert walks == []
        assert parsed.drift == (Finding("event_name", "OrderLinesTeleportedByBuyer"),)
        assert parsed.drift == parsed.drift
        assert walks == ["OrderLinesTeleportedByBuyer"]


class TestNumbersAsText:
    """A number sent as JSON text is the number, and is named with its generic path."""

    BODY: ClassVar[dict[str, Any]] = {"eventName": "OrderIssuedByBuyer", "orderEvent": {"orderId": "o", "lines": [
        {"id": "l1", "buyerLine": {"deliverySchedule": [{"quantity": "10"}, {"quantity": 4}],
                                   "prices": {"netPrice": {"priceInTransactionCurrency": {"value": "1.50"}}}}},
        {"id": "l2", "buyerLine": {"deliverySchedule": [{"quantity": "2"}]}}]}}

    def test_found_once_per_path(self) -> None:
        parsed = parse_webhook("orders", orjson.dumps(self.BODY), "application/json")
        assert set(parsed.drift) == {
            Finding("number_as_text", "orderEvent.lines[].buyerLine.deliverySchedule[].quantity"),
            Finding("number_as_text", "orderEvent.lines[].buyerLine.prices.netPrice.priceInTransactionCurrency.value"),
        }
        line = parsed.envelope.model_dump(exclude_none=True)["orderEvent"]["lines"][0]["buyerLine"]
        assert line["deliverySchedule"] == [{"quantity": 10}, {"quantity": 4}]
        assert type(line["prices"]["netPrice"]["priceInTransactionCurrency"]["value"]) is Decimal

    def test_walked_in_another_context(self) -> None:
        """The store walks later, in its own task: the note is taken when the body is parsed."""
        parsed = parse_webhook("orders", orjson.dumps(self.BODY), "application/json")
        plain = parse_webhook("orders", orjson.dumps({"eventName": "OrderIssuedByBuyer", "orderEvent": {
            "orderId": "o", "lines": [{"buyerLine": {"deliverySchedule": [{"quantity": 1}]}}]}}), "application/json")
        assert len(contextvars.Context().run(lambda: parsed.drift)) == 2
        assert contextvars.Context().run(lambda: plain.drift) == ()

    def test_not_a_number_is_refused_at_the_field(self) -> None:
        body = {"eventName": "X", "orderEvent": {"lines": [{"buyerLine": {"deliverySchedule": [{"quantity": "ten"}]}}]}}
        with pytest.raises(InvalidBody, match=r"^orderEvent\.lines\[0\]\.buyerLine\.deliverySchedule\[0\]\.quantity: "
                                              r"Input should be a valid decimal$"):
            parse_webhook("orders", orjson.dumps(body), "application/json")


DATA = Path(__file__).parent / "data"
SAMPLES = sorted(DATA.glob("*.json"))
FREE_MAPS = ("eventDates",)  # a map of any names in the contract, not a model: its keys are data


def _objects(value: object, path: str = "") -> Iterator[tuple[str, dict[str, object]]]:
    """Every JSON object of a body with its generic path (``a.b[].c``)."""
    if isinstance(value, dict):
        yield path, value
        for key, item in value.items():
            yield from _objects(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from _objects(item, path + "[]")


class TestWalkOnlyWhenMet:
    """Validation notes an unknown where it meets one; a body without any is not walked."""

    @pytest.fixture
    def walks(self, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        seen: list[str] = []
        real = drift._walk

        def counted(model: Any, path: str, found: dict[Finding, None], **options: Any) -> None:
            seen.append(path)
            real(model, path, found, **options)

        monkeypatch.setattr(drift, "_walk", counted)
        return seen

    @pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
    def test_known_body_is_not_walked(self, sample: Path, walks: list[str]) -> None:
        route = "shipments" if "shipment" in sample.stem else "orders"
        parsed = parse_webhook(route, sample.read_bytes(), "application/json")
        assert parsed.drift == ()
        assert walks == []
        # Walked anyway, it finds nothing either: skipping it lost nothing.
        assert drift.find_drift(parsed.envelope, parsed.event_name, (), walk=True) == ()
        assert walks != []

    @pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
    def test_a_field_added_to_any_object_is_found(self, sample: Path, walks: list[str]) -> None:
        route = "shipments" if "shipment" in sample.stem else "orders"
        body = orjson.loads(sample.read_bytes())
        places = [path for path, _ in _objects(body)]
        assert len(places) > 10
        for index, path in enumerate(places):
            if path.rpartition(".")[2] in FREE_MAPS:
                continue
            changed = orjson.loads(sample.read_bytes())
            target = [obj for _, obj in _objects(changed)][index]
            target["zzFutureField"] = 1
            found = parse_webhook(route, orjson.dumps(changed), "application/json").drift
            expected = f"{path}.zzFutureField" if path else "zzFutureField"
            assert found == (Finding("field", expected),), path

    def test_an_unknown_enum_value_alone_is_found(self, walks: list[str]) -> None:
        body = {"eventName": "OrderIssuedByBuyer", "orderEvent": {"orderId": "o", "lines": [
            {"id": "l1", "lineType": "Item"}, {"id": "l2", "lineType": "Subscription"}]}}
        assert drift_of("orders", body) == {Finding("enum_value", "orderEvent.lines[].lineType=Subscription")}
        assert walks != []
