from __future__ import annotations

from typing import Any

import orjson
import pytest
from openapi_spec_validator import validate

from tcwebhook.contract.openapi import build_openapi, openapi_json

ORDERS, SHIPMENTS = "/tradecloud/orders", "/tradecloud/shipments"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return build_openapi(ORDERS, SHIPMENTS)


class TestDocument:
    """The OpenAPI document is valid and describes every endpoint of the receiver."""

    def test_validates(self, spec: dict[str, Any]) -> None:
        validate(spec)

    def test_paths(self, spec: dict[str, Any]) -> None:
        paths = spec["paths"]
        assert set(paths) == {ORDERS, f"{ORDERS}/{{orderId}}", SHIPMENTS, f"{SHIPMENTS}/{{shipmentId}}",
                              "/healthz"}
        assert set(paths[ORDERS]) == {"post", "get"}
        query = {p["name"] for p in paths[ORDERS]["get"]["parameters"]}
        assert query == {"orderId", "legacyOrderId"}

    def test_post_bodies_and_responses(self, spec: dict[str, Any]) -> None:
        post = spec["paths"][SHIPMENTS]["post"]
        content = post["requestBody"]["content"]
        assert set(content) == {"application/json", "application/xml", "text/xml"}
        assert content["application/xml"]["schema"] == {"$ref": "#/components/schemas/ShipmentWebhook"}
        responses = post["responses"]
        assert set(responses) == {"200", "202", "400", "401", "413", "415", "503"}
        assert "WWW-Authenticate" in responses["401"]["headers"]
        assert "Retry-After" in responses["503"]["headers"]
        error = spec["components"]["schemas"]["Error"]
        assert error["required"] == ["error", "detail"]

    def test_security(self, spec: dict[str, Any]) -> None:
        schemes = spec["components"]["securitySchemes"]
        assert schemes == {"basicAuth": {"type": "http", "scheme": "basic"},
                           "bearerAuth": {"type": "http", "scheme": "bearer"}}
        assert spec["security"] == [{"basicAuth": []}, {"bearerAuth": []}]
        assert spec["paths"]["/healthz"]["get"]["security"] == []

    def test_schemas_from_models(self, spec: dict[str, Any]) -> None:
        schemas = spec["components"]["schemas"]
        for name in ("OrderWebhook", "ShipmentWebhook", "OrderEvent", "SingleDeliveryOrderEvent",
                     "OrderDocumentsEvent", "Shipment", "DeliveryLine", "Prices", "Location"):
            assert name in schemas
        assert schemas["OrderWebhook"]["required"] == ["eventName"]
        assert schemas["OrderWebhook"]["additionalProperties"] is True
        lines = schemas["OrderEvent"]["properties"]["lines"]["anyOf"][0]
        assert lines["items"]["xml"] == {"name": "line"}
        status = schemas["DeliveryLine"]["properties"]["status"]["anyOf"][0]
        assert status["type"] == "string" and "ReadyToShip" in status["examples"]
        quantity = schemas["DeliveryLine"]["properties"]["quantity"]["anyOf"][0]
        assert quantity == {"type": "number"}


class TestCaching:
    """Built once: copies are independent, the JSON bytes are shared."""

    def test_copies_are_independent(self) -> None:
        first = build_openapi(ORDERS, SHIPMENTS)
        first["paths"].clear()
        assert build_openapi(ORDERS, SHIPMENTS)["paths"]

    def test_json_bytes(self) -> None:
        body = openapi_json(ORDERS, SHIPMENTS)
        assert body is openapi_json(ORDERS, SHIPMENTS)
        assert orjson.loads(body) == build_openapi(ORDERS, SHIPMENTS)

    def test_other_paths(self) -> None:
        spec = build_openapi("/a", "/b")
        validate(spec)
        assert "/a/{orderId}" in spec["paths"]
