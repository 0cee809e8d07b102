from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tcwebhook.contract.identifiers import is_valid_id
from tcwebhook.contract.models import OrderWebhook
from tcwebhook.contract.openapi import build_openapi, openapi_json
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.errors import InvalidBody

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
        (query,) = paths[ORDERS]["get"]["parameters"]
        assert query["in"] == "query" and query["required"] and query["explode"]
        assert set(query["schema"]["properties"]) == {"orderId", "legacyOrderId"}
        assert query["schema"]["oneOf"] == [{"required": ["orderId"]}, {"required": ["legacyOrderId"]}]

    def test_post_bodies_and_responses(self, spec: dict[str, Any]) -> None:
        post = spec["paths"][SHIPMENTS]["post"]
        content = post["requestBody"]["content"]
        # tXML cannot express the JSON schema (text only, no null): it is described in prose.
        assert set(content) == {"application/json"}
        assert content["application/json"]["schema"] == {"anyOf": [
            {"$ref": "#/components/schemas/ShipmentWebhook"}, {"$ref": "#/components/schemas/UnknownWebhook"}]}
        assert "tXML" in post["description"] and "gzip" in post["description"]
        assert "Accept-Encoding" in post["responses"]["415"]["headers"]
        responses = post["responses"]
        assert set(responses) == {"200", "202", "400", "401", "413", "415", "429", "503"}
        assert "WWW-Authenticate" in responses["401"]["headers"]
        assert "Retry-After" in responses["429"]["headers"]
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
        assert status["type"] == ["string", "number"] and "ReadyToShip" in status["examples"]
        quantity = schemas["DeliveryLine"]["properties"]["quantity"]["anyOf"][0]
        assert quantity["anyOf"][0] == {"type": "number"}


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


def _validator(spec: dict[str, Any], name: str) -> Draft202012Validator:
    """A JSON-schema validator for one component, resolving refs inside the document."""
    registry = Registry().with_resource("urn:spec", Resource.from_contents(spec, default_specification=DRAFT202012))
    schema = {"$ref": f"urn:spec#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=registry)


class TestSchemaMatchesValidation:
    """The document accepts exactly what the models accept, on the cases where they used to differ."""

    @pytest.mark.parametrize(
        ("body", "ok"),
        [
            ({"eventName": "X", "orderEvent": {}}, True),
            ({"eventName": "X"}, False),  # no event object
            ({"eventName": "X", "orderEvent": {}, "orderDocumentsEvent": {}}, False),  # two
            ({"eventName": "X", "orderEvent": None}, False),  # null is not an event object
            ({"eventName": "X", "orderEvent": {}, "shipment": {}}, False),  # the other webhook's key
            ({"eventName": 5, "orderEvent": {}}, False),  # event names are never numbers
            ({"eventName": "X", "orderEvent": {"orderId": 123}}, True),  # ids: a number becomes text
            ({"eventName": "X", "orderEvent": {"lines": [{"buyerLine": {"deliverySchedule": [
                {"quantity": "12.50", "date": "not a date"}]}}]}}, True),
            ({"eventName": "X", "orderEvent": {"lines": [{"buyerLine": {"deliverySchedule": [
                {"quantity": "twelve"}]}}]}}, False),
            ({"eventName": "X", "orderEvent": {"indicators": {"deliveryOverdue": "yes"}}}, True),
            ({"eventName": "X", "orderEvent": {"indicators": {"deliveryOverdue": 2}}}, False),
        ],
    )
    def test_order_bodies(self, spec: dict[str, Any], body: dict[str, Any], ok: bool) -> None:
        schema_ok = _validator(spec, "OrderWebhook").is_valid(body)
        try:
            OrderWebhook.model_validate(body)
            model_ok = True
        except ValidationError:
            model_ok = False
        assert (schema_ok, model_ok) == (ok, ok)

    @pytest.mark.parametrize(
        ("body", "ok"),
        [
            ({"eventName": "X", "meta": {}, "orderTeleportEvent": {}}, True),
            ({"eventName": "X", "meta": {"messageId": 5}, "newEvent": {"a": 1}, "note": "text"}, True),
            ({"eventName": "X", "newEvent": {}}, False),  # no meta: no envelope
            ({"eventName": "X", "meta": "m-1", "newEvent": {}}, False),  # meta of another shape
            ({"eventName": "X", "meta": {}}, False),  # no object at all
            ({"eventName": "X", "meta": {}, "note": "text", "n": [1]}, False),  # no object under a new key
            ({"eventName": "X", "meta": {}, "newEvent": {}, "shipment": {}}, False),  # the other webhook's key
            ({"eventName": "X", "meta": {}, "newEvent": {}, "orderEvent": None}, False),
            ({"meta": {}, "newEvent": {}}, False),  # no eventName
            ({"eventName": "", "meta": {}, "newEvent": {}}, False),
        ],
    )
    def test_unknown_event_objects(self, spec: dict[str, Any], body: dict[str, Any], ok: bool) -> None:
        """The request body schema of the orders endpoint says what the receiver stores (kind unknown
        included) and what it refuses."""
        registry = Registry().with_resource("urn:spec", Resource.from_contents(spec, default_specification=DRAFT202012))
        schema = {"anyOf": [{"$ref": "urn:spec#/components/schemas/OrderWebhook"},
                            {"$ref": "urn:spec#/components/schemas/UnknownWebhook"}]}
        schema_ok = Draft202012Validator(schema, registry=registry).is_valid(body)
        try:
            parse_webhook("orders", orjson.dumps(body), "application/json")
            parsed_ok = True
        except InvalidBody:
            parsed_ok = False
        assert (schema_ok, parsed_ok) == (ok, ok)

    def test_trigger_ids(self, spec: dict[str, Any]) -> None:
        (param,) = spec["paths"][f"{ORDERS}/{{orderId}}"]["get"]["parameters"]
        pattern = param["schema"]["pattern"]
        sdk_example = "f56aa4ce-8d4f-4b6b-9a3a-2f1e0c9d8b7a-PO-05-#51388860"
        for value, ok in [("3b0c2a0e-7d7e", True), ("PO:1@x", True), ("abc\n", False), ("", False),
                          ("a/b", True), ("a" * 200, True), ("a" * 201, False), (".a", True), (sdk_example, True),
                          ("PO 1/2 #3 %4 &5 +6 é 漢", True), ("a\tb", False), ("a\x7fb", False),
                          ("a\x85b", False), ("a\u2028b", False)]:
            assert is_valid_id(value) is ok
            # Python's "$" would also match before a final newline; JSON Schema's does not.
            assert (re.search(pattern, value) is not None and "\n" not in value) is ok
