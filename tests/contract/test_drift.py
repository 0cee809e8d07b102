"""What the models did not know, named once per body: fields, enum values, event names and keys."""

from __future__ import annotations

import orjson
import pytest

from tcwebhook.contract import drift
from tcwebhook.contract.drift import MAX_DETAIL, MAX_FINDINGS, Finding
from tcwebhook.contract.parse import parse_webhook


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

        def counted(envelope: object, event_name: str, event_keys: tuple[str, ...]) -> tuple[Finding, ...]:
            walks.append(event_name)
            return real(envelope, event_name, event_keys)  # type: ignore[arg-type]

        monkeypatch.setattr(drift, "find_drift", counted)
        body = {"eventName": "OrderLinesTeleportedByBuyer", "orderEvent": {"orderId": "o"}}
        parsed = parse_webhook("orders", orjson.dumps(body), "application/json")
        assert walks == []
        assert parsed.drift == (Finding("event_name", "OrderLinesTeleportedByBuyer"),)
        assert parsed.drift == parsed.drift
        assert walks == ["OrderLinesTeleportedByBuyer"]
