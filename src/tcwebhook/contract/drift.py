"""What a webhook carried that the models did not know: the contract-drift findings.

Tradecloud promises only backward compatibility, so new fields, enum values and event names
appear without notice. The models keep them (``model_extra``, open enums, open name lists); this
walk names them, once per body, for the drift report (``tcwebhook contract drift``) and the
``tcwebhook_contract_unknown_total{what}`` metric. Paths are generic (``orderEvent.lines[].x``),
so a new field counts once per body, not once per line.

The walk visits each model of the typed body once and reads only what it already holds; the
per-class plan (which fields are models, lists of models, open enums) is built once per class.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from tcwebhook.contract.names import kind_of_name

What = Literal["field", "enum_value", "event_name", "event_key"]
WHATS: tuple[What, ...] = ("field", "enum_value", "event_name", "event_key")


@dataclass(frozen=True, slots=True)
class OpenEnum:
    """Annotation marker of an open enumeration: the values the contract documents."""

    values: frozenset[str]


@dataclass(frozen=True, slots=True)
class Finding:
    what: What
    detail: str  # the field path, ``path=value`` for an enum value, or the name


@dataclass(frozen=True, slots=True)
class _Plan:
    models: dict[str, str]  # attribute -> wire name, for attributes holding a model or a list of them
    enums: dict[str, tuple[str, frozenset[str]]]  # attribute -> (wire name, known values)


def _inner(annotation: Any) -> list[Any]:
    """The types an annotation may hold: ``X | None`` and ``list[X]`` unwrapped."""
    origin = get_origin(annotation)
    if origin is Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        return [t for a in get_args(annotation) for t in _inner(a)]
    if origin is Annotated:
        return [annotation]
    if origin is list:
        return [t for a in get_args(annotation) for t in _inner(a)]
    return [annotation]


@cache
def _plan(cls: type[BaseModel]) -> _Plan:
    models: dict[str, str] = {}
    enums: dict[str, tuple[str, frozenset[str]]] = {}
    for name, info in cls.model_fields.items():
        wire = info.serialization_alias or info.alias or name
        for t in _inner(info.annotation):
            if get_origin(t) is Annotated:
                base, *meta = get_args(t)
                marks = [m for m in meta if isinstance(m, OpenEnum)]
                if marks:
                    enums[name] = (wire, marks[0].values)
                    break
                t = base
                if get_origin(t) is list:
                    t = next(iter(_inner(t)), None)
            if isinstance(t, type) and issubclass(t, BaseModel):
                models[name] = wire
                break
    return _Plan(models, enums)


# A body full of invented names must not make the report (a table row each) grow without end.
MAX_FINDINGS = 50
MAX_DETAIL = 200


def find_drift(envelope: BaseModel, event_name: str, event_keys: tuple[str, ...]) -> tuple[Finding, ...]:
    """Everything in ``envelope`` the models and name lists do not know, each finding once
    (at most ``MAX_FINDINGS``, each cut to ``MAX_DETAIL`` characters)."""
    found = _find(envelope, event_name, event_keys)
    if len(found) > MAX_FINDINGS or any(len(f.detail) > MAX_DETAIL for f in found):
        found = tuple(Finding(f.what, f.detail[:MAX_DETAIL]) for f in found[:MAX_FINDINGS])
    return found


class LazyDrift:
    """The findings of one typed body, found on first call and kept.

    A duplicate's findings are never used (drift is counted for stored events only), so the
    receiver hands this on and the inbox calls it in the transaction that stores the event.
    Two threads calling at once both walk and get equal findings: harmless, so no lock.
    """

    __slots__ = ("_envelope", "_event_keys", "_event_name", "_found")

    def __init__(self, envelope: BaseModel, event_name: str, event_keys: tuple[str, ...]) -> None:
        self._envelope = envelope
        self._event_name = event_name
        self._event_keys = event_keys
        self._found: tuple[Finding, ...] | None = None

    def __call__(self) -> tuple[Finding, ...]:
        found = self._found
        if found is None:
            found = self._found = find_drift(self._envelope, self._event_name, self._event_keys)
        return found


def _find(envelope: BaseModel, event_name: str, event_keys: tuple[str, ...]) -> tuple[Finding, ...]:
    found: dict[Finding, None] = {}
    if kind_of_name(event_name) is None:
        found[Finding("event_name", event_name)] = None
    extra = envelope.model_extra or {}
    for key, value in extra.items():
        # An unknown top-level object beside eventName may be an event object added after us.
        what: What = "event_key" if isinstance(value, dict) and key not in event_keys else "field"
        found[Finding(what, key)] = None
    _walk(envelope, "", found, top=True)
    return tuple(found)


def _walk(model: BaseModel, path: str, found: dict[Finding, None], *, top: bool = False) -> None:
    # ``__pydantic_extra__`` and ``__pydantic_fields_set__`` are the documented attributes behind
    # ``model_extra`` and ``model_fields_set``, read without those properties' call per model.
    extra = model.__pydantic_extra__
    if extra and not top:
        for key in extra:
            found[Finding("field", f"{path}.{key}")] = None
    plan = _plan(type(model))
    # Only the few fields that can hold drift (models, open enums), and of those only the ones the
    # body set: most of a model's fields are plain values, most of its declared fields absent.
    fields_set = model.__pydantic_fields_set__
    for name, wire in plan.models.items():
        if name not in fields_set:
            continue
        value = getattr(model, name)
        if value is None:
            continue
        where = f"{path}.{wire}" if path else wire
        if isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    _walk(item, where + "[]", found)
        elif isinstance(value, BaseModel):
            _walk(value, where, found)
    for name, (wire, known) in plan.enums.items():
        if name not in fields_set:
            continue
        value = getattr(model, name)
        if value is not None and value not in known:
            found[Finding("enum_value", f"{path}.{wire}={value}" if path else f"{wire}={value}")] = None
