"""The receiver's OpenAPI 3.1 document, with request schemas generated from the contract models.

The document says exactly what the receiver accepts, so that a client generated from it (or a
fuzzer) never sends a request the document calls valid and the receiver refuses: the "exactly one
event object" rule of the envelopes (or an event object under a key neither webhook knows, beside
``meta``: stored as kind unknown), the identifier rule of GET triggers, and only the media type
whose schema is honest. tXML bodies are accepted too, but the JSON schema cannot describe them
(every XML value is text, a missing element stands for null), so they are described in prose.

Building it takes a few milliseconds (schema generation is cached per process); the server
builds it once at start-up and serves the bytes (``openapi_json``).
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import orjson
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from tcwebhook.contract.identifiers import ID_MAX_LENGTH, ID_PATTERN
from tcwebhook.contract.models import OrderWebhook, ShipmentWebhook, UnknownWebhook
from tcwebhook.contract.names import ORDER_BODY_KEYS, SHIPMENT_BODY_KEYS
from tcwebhook.contract.txml import XML_ITEM_NAMES

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{model}"

_ERROR = {
    "type": "object",
    "description": "Why the request failed; ``detail`` names the offending field when there is one.",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "examples": ["invalid_body", "unauthorized", "unavailable"]},
        "detail": {"type": "string"},
        "eventId": {"type": "string"},
    },
    "additionalProperties": True,
}
_ACK = {
    "type": "object",
    "required": ["status", "eventId"],
    "properties": {
        "status": {"type": "string", "enum": ["stored", "duplicate", "delivered"]},
        "eventId": {"type": "string", "description": "Stable id of the stored event."},
    },
    "additionalProperties": True,
}
_HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]}},
}
_RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 0},
}


class _Schemas(GenerateJsonSchema):
    # Titles derived from attribute names ("Orderid") only add noise beside the wire names.
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    # Extra fields are typed only so that validation notes them (``drift.Unknown``): any value.
    def model_fields_schema(self, schema: Any) -> Any:
        json_schema = super().model_fields_schema(schema)
        target = self.resolve_ref_schema(json_schema)
        if target.get("additionalProperties") == {}:
            target["additionalProperties"] = True
        return json_schema


@lru_cache(maxsize=1)
def _model_schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(OrderWebhook, "validation"), (ShipmentWebhook, "validation"), (UnknownWebhook, "validation")],
        ref_template=_REF,
        schema_generator=_Schemas,
    )
    schemas: dict[str, Any] = top["$defs"]
    for schema in schemas.values():
        _add_xml_item_names(schema)
        _describe_lax_scalars(schema)
    _one_event_object(schemas["OrderWebhook"], ORDER_BODY_KEYS, SHIPMENT_BODY_KEYS)
    _one_event_object(schemas["ShipmentWebhook"], SHIPMENT_BODY_KEYS, ORDER_BODY_KEYS)
    _unknown_event_object(schemas["UnknownWebhook"])
    return schemas


# What the models' lax validation takes besides the JSON type (pydantic's documented conversions):
# a number where text is expected (``coerce_numbers_to_str``: identifiers keep no leading zeros to
# lose), decimal text where a number is expected, and 0/1 or yes/no words where a boolean is.
# Digits and exponent are bounded so that every text the pattern allows stays within the models'
# ±MAX_NUMBER_EXPONENT (at most 500 digits either side of the point, a two-digit exponent).
_DECIMAL_TEXT = {
    "type": "string",
    "pattern": r"^\s*[+-]?(\d(_?\d){0,499}(\.(\d(_?\d){0,499})?)?|\.\d(_?\d){0,499})([eE][+-]?\d{1,2})?\s*$",
}
_BOOLEAN_WORDS = ("true", "false", "yes", "no", "on", "off", "t", "f", "y", "n", "1", "0")
_BOOLEAN_TEXT = {
    "type": "string",
    # Case-insensitive, spelled out because ECMA-262 patterns have no inline flags.
    "pattern": "^(" + "|".join("".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word)
                               for word in _BOOLEAN_WORDS) + ")$",
}
_STRICT_TEXT = frozenset({"eventName"})  # EventNameText: strict, never a number


def _describe_lax_scalars(node: Any, name: str | None = None) -> None:
    """Widen each scalar schema to every JSON value the model accepts for it (in place)."""
    if isinstance(node, list):
        for item in node:
            _describe_lax_scalars(item)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "string" and name not in _STRICT_TEXT:
        node["type"] = ["string", "number"]
    elif kind == "number":
        node.pop("type")
        node["anyOf"] = [{"type": "number"}, _DECIMAL_TEXT]
    elif kind == "boolean":
        node.pop("type")
        node["anyOf"] = [{"type": "boolean"}, {"enum": [0, 1]}, _BOOLEAN_TEXT]
    for key, value in list(node.items()):
        if key == "properties":
            for prop, schema in value.items():
                _describe_lax_scalars(schema, prop)
        elif key not in ("anyOf",) or kind not in ("number", "boolean"):
            _describe_lax_scalars(value)


def _one_event_object(schema: dict[str, Any], keys: tuple[str, ...], foreign: tuple[str, ...]) -> None:
    """State the envelope rule the model validator enforces (``_check_single_event``).

    Exactly one of the event keys is present and it is an object (an explicit null is refused),
    and no event key of the other webhook appears.
    """
    for key in keys:
        prop = schema["properties"][key]
        refs = [branch for branch in prop.pop("anyOf") if branch.get("type") != "null"]
        prop.pop("default", None)
        prop.update(refs[0])
    schema["oneOf"] = [{"required": [key]} for key in keys]
    schema["not"] = {"anyOf": [{"required": [key]} for key in foreign]}


def _unknown_event_object(schema: dict[str, Any]) -> None:
    """State what makes a body an envelope of an event object no model knows
    (``parse._unknown_envelope``): ``eventName`` and ``meta``, no event key of either webhook, and
    some other key holding an object."""
    schema["not"] = {"anyOf": [{"required": [key]} for key in ORDER_BODY_KEYS + SHIPMENT_BODY_KEYS]}
    schema["allOf"] = [{"not": {
        "properties": {"eventName": True, "meta": True},
        "additionalProperties": {"not": {"type": "object"}},
    }}]


def _add_xml_item_names(schema: dict[str, Any]) -> None:
    """Tell XML readers the singular element name of each array (``lines`` -> ``line``)."""
    for key, prop in schema.get("properties", {}).items():
        names = XML_ITEM_NAMES.get(key)
        if not names:
            continue
        for candidate in (prop, *prop.get("anyOf", ())):
            if candidate.get("type") == "array" and "items" in candidate:
                candidate["items"] = {**candidate["items"], "xml": {"name": names[0]}}


def _error(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _ack(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="Ack")}}},
    }


_UNAUTHORIZED = _error(
    "Missing or wrong credentials.",
    **{"WWW-Authenticate": {"description": "The Basic and/or Bearer challenge.",
                            "schema": {"type": "string"}}},
)
_TOO_MANY_FAILURES = _error(
    "Too many failed authentications from this client address in the window ([auth] failure_limit); "
    "correct credentials are still accepted.",
    **{"Retry-After": _RETRY_AFTER},
)
_UNAVAILABLE = _error(
    "Temporary failure (store or ERP unavailable): Tradecloud retries later.",
    **{"Retry-After": _RETRY_AFTER},
)


def _post(model: str, summary: str, operation_id: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": (
            "Stores the event durably before answering. The body is JSON (`application/json` or "
            "any `application/*+json`, UTF-8) as described by the schema, or the same structure "
            "in tXML (`application/xml`, `text/xml`, `application/*+xml`): the root element's "
            "name is ignored, arrays are repeated singular elements (the schema's `xml.name`), "
            "a missing element stands for null. `Content-Encoding: gzip` or `deflate` bodies are "
            "decoded; the decoded size counts against the body limit."
        ),
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"anyOf": [
                {"$ref": _REF.format(model=model)},
                {"$ref": _REF.format(model="UnknownWebhook")},
            ]}}},
        },
        "responses": {
            "200": _ack("Already stored (duplicate message), or delivered in synchronous mode."),
            "202": _ack(
                "Stored; delivery to the ERP follows. Also for an event object of a key neither "
                "webhook knows (kind unknown): delivered to sinks with accept_unknown, held for the others."
            ),
            "400": _error("The body is not a webhook body of this endpoint (never retried)."),
            "401": _UNAUTHORIZED,
            "429": _TOO_MANY_FAILURES,
            "413": _error("The body (decoded) exceeds the configured limit."),
            "415": _error(
                "The Content-Type is not JSON or XML in UTF-8, or the Content-Encoding is not "
                "gzip or deflate.",
                **{"Accept-Encoding": {"description": "The content codings accepted (RFC 7694).",
                                       "schema": {"type": "string"}}},
            ),
            "503": _UNAVAILABLE,
        },
    }


def _fetch_get(operation_id: str, summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": "Historic GET webhook: only an id; the object is fetched from Tradecloud.",
        "parameters": params,
        "responses": {
            "202": _ack("Stored; the fetch follows."),
            "400": _error("No usable id given (never retried)."),
            "401": _UNAUTHORIZED,
            "429": _TOO_MANY_FAILURES,
            "503": _UNAVAILABLE,
        },
    }


_ID_SCHEMA = {"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": ID_MAX_LENGTH}


def _path_id(name: str, description: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "description": description, "schema": _ID_SCHEMA}]


def _query_id(names: tuple[str, ...], description: str) -> list[dict[str, Any]]:
    """The query form of a trigger: exactly one of ``names``, as ``?name=value``."""
    if len(names) == 1:
        return [{"name": names[0], "in": "query", "required": True, "description": description,
                 "schema": _ID_SCHEMA}]
    # One exploded object parameter is how OpenAPI says "exactly one of these query parameters":
    # its properties are the query parameters themselves.
    return [{
        "name": "id",
        "in": "query",
        "required": True,
        "style": "form",
        "explode": True,
        "description": description,
        "schema": {
            "type": "object",
            "properties": dict.fromkeys(names, _ID_SCHEMA),
            "oneOf": [{"required": [name]} for name in names],
        },
    }]


@lru_cache(maxsize=8)
def _document(orders_path: str, shipments_path: str) -> dict[str, Any]:
    schemas = {**_model_schemas(), "Error": _ERROR, "Ack": _ACK, "Health": _HEALTH}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "tcwebhook",
            "version": "1",
            "description": "Receiver for Tradecloud order, order-documents and shipment webhooks.",
        },
        "paths": {
            orders_path: {
                "post": _post("OrderWebhook", "Order or order-documents event", "postOrderEvent"),
                "get": _fetch_get("getOrderTrigger", "Order changed (id in the query)", _query_id(
                    ("orderId", "legacyOrderId"),
                    "`orderId` (Tradecloud order id) or `legacyOrderId` (order on the legacy platform), "
                    "exactly one of them.",
                )),
            },
            f"{orders_path}/{{orderId}}": {
                "get": _fetch_get("getOrderTriggerById", "Order changed (id in the path)", _path_id(
                    "orderId", "Tradecloud order id, or a legacy order id.",
                )),
            },
            shipments_path: {
                "post": _post("ShipmentWebhook", "Shipment event", "postShipmentEvent"),
                "get": _fetch_get("getShipmentTrigger", "Shipment changed (id in the query)", _query_id(
                    ("shipmentId",), "`shipmentId`: the Tradecloud shipment id.",
                )),
            },
            f"{shipments_path}/{{shipmentId}}": {
                "get": _fetch_get("getShipmentTriggerById", "Shipment changed (id in the path)", _path_id(
                    "shipmentId", "Tradecloud shipment id.",
                )),
            },
            "/healthz": {
                "get": {
                    "operationId": "getHealth",
                    "summary": "Liveness and store readiness",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Ready.",
                            "content": {"application/json": {
                                "schema": {"$ref": _REF.format(model="Health")}}},
                        },
                        "503": {
                            "description": "The store cannot take writes.",
                            "headers": {"Retry-After": _RETRY_AFTER},
                            "content": {"application/json": {
                                "schema": {"$ref": _REF.format(model="Health")}}},
                        },
                    },
                },
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic"},
                "bearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"basicAuth": []}, {"bearerAuth": []}],
    }


def build_openapi(orders_path: str, shipments_path: str) -> dict[str, Any]:
    """The OpenAPI document for the receiver mounted at these two paths (a fresh copy)."""
    return copy.deepcopy(_document(orders_path, shipments_path))


@lru_cache(maxsize=8)
def openapi_json(orders_path: str, shipments_path: str) -> bytes:
    """The same document serialised once, ready to serve."""
    return orjson.dumps(_document(orders_path, shipments_path))
