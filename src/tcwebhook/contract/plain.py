"""The envelope models' validation rules without building model instances (the request hot path).

``plain_validator(model)`` compiles the model's own core schema with every model node replaced
by its field schema, so the result is nested ``(fields, extra, fields_set)`` tuples instead of
some seventy model instances per order event. Two more changes make it cheaper still, and both
can only make it *stricter* than the model, never more lenient:

* decimal fields accept finite JSON numbers only (the model also takes numeric strings);
* unknown fields of nested objects are skipped instead of collected (the raw body is kept).

The envelopes' one-event-object check is left to ``single_event_key``. Whatever this path
refuses or cannot decide, the caller validates with the model itself, which then gives the
authoritative answer and error message; so bodies accepted are exactly the model's.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any, cast

from pydantic import BaseModel
from pydantic_core import CoreConfig, SchemaValidator

from tcwebhook.contract.names import ORDER_BODY_KEYS, SHIPMENT_BODY_KEYS

PlainFields = tuple[dict[str, Any], dict[str, Any] | None, set[str]]
"""One validated object: field values by attribute name, unknown fields, fields present."""

_OTHER_FAMILY: dict[str, tuple[str, ...]] = {"orders": SHIPMENT_BODY_KEYS, "shipments": ORDER_BODY_KEYS}
_NUMBER = {"type": "float", "strict": True, "allow_inf_nan": False}


class _Unsupported(Exception):
    """The schema has a node this transformation does not know to be safe."""


def plain_validator(model: type[BaseModel]) -> SchemaValidator | None:
    """A validator returning ``PlainFields`` for ``model``; None when the schema is not supported."""
    configs: list[dict[str, Any]] = []

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        inner = node.get("schema")
        if kind == "function-after" and isinstance(inner, dict) and inner.get("cls") is model:
            return walk(inner)  # the envelope's own after-validator: see single_event_key
        if isinstance(kind, str) and kind.startswith("function"):
            raise _Unsupported(kind)  # a validator we would silently drop
        if kind == "model":
            if node.get("custom_init") or node.get("root_model") or node.get("post_init"):
                raise _Unsupported("model with custom init")
            configs.append({k: v for k, v in node.get("config", {}).items() if k != "title"})
            fields = dict(walk(inner))
            if fields.get("type") != "model-fields":
                raise _Unsupported(fields.get("type"))
            if "ref" in node:
                fields["ref"] = node["ref"]
            fields["extra_behavior"] = "allow" if node.get("cls") is model else "ignore"
            return fields
        if kind == "decimal":
            if set(node) - {"type", "metadata", "serialization"}:
                raise _Unsupported("constrained decimal")
            return dict(_NUMBER)
        # Serialization and JSON-schema metadata play no part in validation.
        return {key: walk(value) for key, value in node.items() if key not in ("serialization", "metadata")}

    try:
        schema = walk(copy.deepcopy(model.__pydantic_core_schema__))
    except _Unsupported:
        return None
    config = configs[0] if configs else {}
    if any(c != config for c in configs):
        return None  # models with differing settings: the root config cannot stand for all
    config = {k: v for k, v in config.items() if k != "extra_fields_behavior"}
    return SchemaValidator(schema, cast(CoreConfig, config))


def single_event_key(fields: PlainFields, model: type[BaseModel], keys: tuple[str, ...], route: str) -> str | None:
    """The one event key of a plain-validated envelope, or None when the model must decide."""
    values, extra, present = fields
    if extra and any(key in extra for key in _OTHER_FAMILY[route]):
        return None
    found: str | None = None
    for name, key in _event_fields(model, keys):
        if name not in present:
            continue
        if values.get(name) is None or found is not None:
            return None
        found = key
    return found


@cache
def _event_fields(model: type[BaseModel], keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(attribute, wire key) of the envelope fields that hold an event object."""
    pairs = ((name, info.serialization_alias or info.alias or name) for name, info in model.model_fields.items())
    return tuple((name, key) for name, key in pairs if key in keys)
