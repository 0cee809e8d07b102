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
from typing import Any

from pydantic import BaseModel
from pydantic_core import SchemaValidator

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
    own_ref = model.__pydantic_core_schema__.get("schema", {}).get("ref")

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        if kind == "function-after" and node.get("ref") is not None and node.get("ref") == own_ref:
            return walk(node["schema"])  # the envelope's own after-validator: single_event_key
        if kind in ("function-after", "function-before", "function-wrap", "function-plain"):
            raise _Unsupported(kind)  # a validator we would silently drop
        if kind == "model":
            if node.get("custom_init") or node.get("root_model") or node.get("post_init"):
                raise _Unsupported("model with custom init")
            configs.append({k: v for k, v in node.get("config", {}).items() if k != "title"})
            inner = dict(walk(node["schema"]))
            if inner.get("type") != "model-fields":
                raise _Unsupported(inner.get("type"))
            if "ref" in node:
                inner["ref"] = node["ref"]
            inner["extra_behavior"] = "allow" if node.get("cls") is model else "ignore"
            return inner
        if kind == "decimal":
            if set(node) - {"type", "metadata"}:
                raise _Unsupported("constrained decimal")
            return dict(_NUMBER)
        return {key: walk(value) for key, value in node.items()}

    try:
        schema = walk(copy.deepcopy(model.__pydantic_core_schema__))
    except _Unsupported:
        return None
    config = configs[0] if configs else {}
    if any(c != config for c in configs):
        return None  # models with differing settings: the root config cannot stand for all
    config = {k: v for k, v in config.items() if k != "extra_fields_behavior"}
    return SchemaValidator(schema, config)  # type: ignore[arg-type]


def single_event_key(fields: PlainFields, model: type[BaseModel], keys: tuple[str, ...], route: str) -> str | None:
    """The one event key of a plain-validated envelope, or None when the model must decide."""
    values, extra, present = fields
    if extra and any(key in extra for key in _OTHER_FAMILY[route]):
        return None
    found: str | None = None
    for name, info in type.__getattribute__(model, "model_fields").items():
        key = info.serialization_alias or info.alias or name
        if key not in keys or name not in present:
            continue
        if values.get(name) is None or found is not None:
            return None
        found = key
    return found
