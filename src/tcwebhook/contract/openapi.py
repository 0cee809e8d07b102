"""The receiver's OpenAPI 3.1 document, with request schemas generated from the contract models.

Building it takes a few milliseconds (schema generation is cached per process); the server
builds it once at start-up and serves the bytes (``openapi_json``).
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import orjson
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from tcwebhook.contract.models import OrderWebhook, ShipmentWebhook
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


@lru_cache(maxsize=1)
def _model_schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(OrderWebhook, "validation"), (ShipmentWebhook, "validation")],
        ref_template=_REF,
        schema_generator=_Schemas,
    )
    schemas: dict[str, Any] = top["$defs"]
    for schema in schemas.values():
        _add_xml_item_names(schema)
    return schemas


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
_UNAVAILABLE = _error(
    "Temporary failure (store or ERP unavailable): Tradecloud retries later.",
    **{"Retry-After": _RETRY_AFTER},
)


def _post(model: str, summary: str, operation_id: str) -> dict[str, Any]:
    ref = {"$ref": _REF.format(model=model)}
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": (
            "Stores the event durably before answering. JSON or tXML (UTF-8); the XML root "
            "element's name is ignored and arrays are repeated singular elements."
        ),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": ref},
                "application/xml": {"schema": ref},
                "text/xml": {"schema": ref},
            },
        },
        "responses": {
            "200": _ack("Already stored (duplicate message), or delivered in synchronous mode."),
            "202": _ack("Stored; delivery to the ERP follows."),
            "400": _error("The body is not a webhook body of this endpoint (never retried)."),
            "401": _UNAUTHORIZED,
            "413": _error("The body exceeds the configured limit."),
            "415": _error("The Content-Type is not JSON or XML in UTF-8."),
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
            "400": _error("No usable id given."),
            "401": _UNAUTHORIZED,
            "503": _UNAVAILABLE,
        },
    }


def _param(name: str, where: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


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
                "get": _fetch_get("getOrderTrigger", "Order changed (id in the query)", [
                    _param("orderId", "query", "Tradecloud order id."),
                    _param("legacyOrderId", "query", "Order id on the legacy platform."),
                ]),
            },
            f"{orders_path}/{{orderId}}": {
                "get": _fetch_get("getOrderTriggerById", "Order changed (id in the path)", [
                    _param("orderId", "path", "Tradecloud order id, or a legacy order id."),
                ]),
            },
            shipments_path: {
                "post": _post("ShipmentWebhook", "Shipment event", "postShipmentEvent"),
                "get": _fetch_get("getShipmentTrigger", "Shipment changed (id in the query)", [
                    _param("shipmentId", "query", "Tradecloud shipment id."),
                ]),
            },
            f"{shipments_path}/{{shipmentId}}": {
                "get": _fetch_get("getShipmentTriggerById", "Shipment changed (id in the path)", [
                    _param("shipmentId", "path", "Tradecloud shipment id."),
                ]),
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
