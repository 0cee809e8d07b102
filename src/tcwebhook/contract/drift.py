"""What a webhook carried that the models did not know: the contract-drift findings.

Tradecloud promises only backward compatibility, so new fields, enum values and event names
appear without notice. The models keep them (``model_extra``, open enums, open name lists); this
walk names them, once per body, for the drift report (``tcwebhook contract drift``) and the
``tcwebhook_contract_unknown_total{what}`` metric. Paths are generic (``orderEvent.lines[].x``),
so a new field counts once per body, not once per line.

Most bodies hold nothing unknown, so validation notes when it meets something the walk would
name, and the walk runs only then: an extra field (``Unknown``, the type of every model's
extras), a value outside an open enumeration (``OpenEnum``: the known values are matched in
pydantic-core, only another value reaches Python) or a number sent as JSON text
(``"quantity": "10"``, validated as before and marked as a ``TextNumber``). ``LazyDrift`` takes
that note at parse time: the walk itself may run later, in another task. The walk visits each
model of the typed body once and reads only what it already holds; the per-class plan (which
fields are models, lists of models, open enums, numbers) is built once per class.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

from tcwebhook.contract.names import kind_of_name

What = Literal["field", "enum_value", "event_name", "event_key", "number_as_text"]
WHATS: tuple[What, ...] = ("field", "enum_value", "event_name", "event_key", "number_as_text")


# Set when a body being validated met something the walk names: only then does the walk run.
_MET_UNKNOWN: ContextVar[bool] = ContextVar("tcwebhook_met_unknown", default=False)


def _met(value: Any) -> Any:
    _MET_UNKNOWN.set(True)
    return value


def take_unknown() -> bool:
    """Whether validation in this context met an unknown since the last call (and forget it)."""
    if not _MET_UNKNOWN.get():
        return False
    _MET_UNKNOWN.set(False)
    return True


@dataclass(frozen=True, slots=True)
class OpenEnum:
    """Annotation marker of an open enumeration: the values the contract documents.

    Any text is accepted, as before; the known values are matched first, in pydantic-core, so
    only another value calls Python (to note it). A value that is not text is one error at the
    field ("Input should be a valid string").
    """

    values: frozenset[str]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        text = handler(source)
        known = core_schema.literal_schema(sorted(self.values))
        other = core_schema.no_info_after_validator_function(_met, text)
        return core_schema.union_schema([known, other], mode="left_to_right", custom_error_type="string_type")


@dataclass(frozen=True, slots=True)
class MarkUnknown:
    """Annotation marker of the values of extra fields: validation notes that it met one."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(_met, handler(source))


Unknown = Annotated[Any, MarkUnknown()]
"""The type of a model's extra fields (``__pydantic_extra__``): any value, noted for the walk."""


class TextNumber(Decimal):
    """A contract number that arrived as JSON text: equal to the number, marked for the report."""

    __slots__ = ()


def _from_text(value: Decimal) -> Decimal:
    return TextNumber(_met(value))


@dataclass(frozen=True, slots=True)
class NumberText:
    """Annotation marker of a contract number: JSON text is accepted as before, and marked.

    The text member comes first so a JSON number never reaches Python code: for a number its
    strict string check fails in pydantic-core, and the plain decimal member takes it. A value
    neither takes is one error at the field itself ("Input should be a valid decimal").
    """

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        number = handler(source)
        text = core_schema.chain_schema([
            core_schema.str_schema(strict=True),
            number,
            core_schema.no_info_plain_validator_function(_from_text),
        ])
        return core_schema.union_schema([text, number], mode="left_to_right", custom_error_type="decimal_parsing")


@dataclass(frozen=True, slots=True)
class Finding:
    what: What
    detail: str  # the field path, ``path=value`` for an enum value, or the name


@dataclass(frozen=True, slots=True)
class _Plan:
    models: dict[str, str]  # attribute -> wire name, for attributes holding a model or a list of them
    enums: dict[str, tuple[str, frozenset[str]]]  # attribute -> (wire name, known values)
    numbers: dict[str, str]  # attribute -> wire name, for contract numbers


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
    numbers: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        wire = info.serialization_alias or info.alias or name
        for t in _inner(info.annotation):
            if get_origin(t) is Annotated:
                base, *meta = get_args(t)
                marks = [m for m in meta if isinstance(m, OpenEnum)]
                if marks:
                    enums[name] = (wire, marks[0].values)
                    break
                if any(isinstance(m, NumberText) for m in meta):
                    numbers[name] = wire
                    break
                t = base
                if get_origin(t) is list:
                    t = next(iter(_inner(t)), None)
            if isinstance(t, type) and issubclass(t, BaseModel):
                models[name] = wire
                break
    return _Plan(models, enums, numbers)


# A body full of invented names must not make the report (a table row each) grow without end.
MAX_FINDINGS = 50
MAX_DETAIL = 200


def find_drift(
    envelope: BaseModel, event_name: str, event_keys: tuple[str, ...], *, walk: bool | None = None
) -> tuple[Finding, ...]:
    """Everything in ``envelope`` the models and name lists do not know, each finding once
    (at most ``MAX_FINDINGS``, each cut to ``MAX_DETAIL`` characters). ``walk``: whether to walk
    the models (default: whether validating in this context met an unknown); without it only
    the event name is checked."""
    found = _find(envelope, event_name, event_keys, take_unknown() if walk is None else walk)
    if len(found) > MAX_FINDINGS or any(len(f.detail) > MAX_DETAIL for f in found):
        found = tuple(Finding(f.what, f.detail[:MAX_DETAIL]) for f in found[:MAX_FINDINGS])
    return found


class LazyDrift:
    """The findings of one typed body, found on first call and kept.

    A duplicate's findings are never used (drift is counted for stored events only), so the
    receiver hands this on and the inbox calls it in the transaction that stores the event.
    Two threads calling at once both walk and get equal findings: harmless, so no lock.
    """

    __slots__ = ("_envelope", "_event_keys", "_event_name", "_found", "_walk")

    def __init__(self, envelope: BaseModel, event_name: str, event_keys: tuple[str, ...]) -> None:
        self._envelope = envelope
        self._event_name = event_name
        self._event_keys = event_keys
        # Made right after validating the body, in its context: the note of an unknown is taken now.
        self._walk = take_unknown()
        self._found: tuple[Finding, ...] | None = None

    @property
    def walks(self) -> bool:
        """Whether validating the body met an unknown, so that the findings need the walk."""
        return self._walk

    def __call__(self) -> tuple[Finding, ...]:
        found = self._found
        if found is None:
            found = self._found = find_drift(
                self._envelope, self._event_name, self._event_keys, walk=self._walk
            )
        return found


def _find(envelope: BaseModel, event_name: str, event_keys: tuple[str, ...], walk: bool) -> tuple[Finding, ...]:
    found: dict[Finding, None] = {}
    if kind_of_name(event_name) is None:
        found[Finding("event_name", event_name)] = None
    if not walk:
        return tuple(found)
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
    for name, wire in plan.numbers.items():
        if name in fields_set and type(getattr(model, name)) is TextNumber:
            found[Finding("number_as_text", f"{path}.{wire}" if path else wire)] = None
