"""tXML, Tradecloud's XML form of the JSON bodies, read safely and written back (contract §6).

Mapping (one-to-one with JSON):

* The root element's name is ignored (it is not published); its children are the body's keys.
* An array is a run of repeated elements named in the singular (``lines`` -> ``<line>``, see
  ``XML_ITEM_NAMES``); a single ``<line>`` is still an array because the models know which
  fields are lists. A wrapper (``<lines><line/>…</lines>``), the plural name repeated
  (``<lines>…</lines><lines>…</lines>``) and an empty ``<lines/>`` (= ``[]``) are read too.
* Scalars are text. Where the model declares a number or a boolean, text that is a valid JSON
  number or ``true``/``false`` becomes one (numbers as exact ``Decimal``s, integers as ``int``),
  so the typed model equals that of the same body in JSON; anything else stays text and the
  model reports the field.
* An empty element is ``{}`` for a known object, ``[]`` for a known array and ``""`` otherwise;
  ``xsi:nil="true"`` is ``null``. Unknown elements keep their own name (a repeated one becomes a
  list), since nothing says whether they are arrays. Their text stays text, except exactly
  ``true``/``false``, which become booleans: a flag Tradecloud adds later must not reach a
  handler as the string ``"false"``, which Python treats as true. (Numbers stay text: ids such as
  ``"00420"`` look like numbers too.)
* Namespaces and attributes (except ``xsi:nil``) are ignored; element order is irrelevant.

Hardening: the parser is ``defusedxml``'s with DTDs, entity declarations and external
references forbidden, so billion-laughs and XXE bodies fail at their DOCTYPE before anything
is expanded. Nesting depth and element count are bounded while parsing, and only UTF-8 is
read (a declared other encoding is refused).
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from functools import cache
from typing import Any, Literal, Union
from xml.parsers.expat import ExpatError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
from pydantic import AliasChoices, BaseModel

from tcwebhook.errors import InvalidBody

MAX_DEPTH = 64
MAX_ELEMENTS = 250_000
# Attributes are ignored, but expat and the handler still build them: bounded like elements.
MAX_ELEMENT_ATTRIBUTES = 64
MAX_ATTRIBUTES = 100_000  # a tXML document needs next to none (xsi:nil)

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_NS_SEP = "}"
_NIL = XSI_NS + _NS_SEP + "nil"  # as expat reports it

# JSON array key -> element names of its items; the first is the one written.
XML_ITEM_NAMES: dict[str, tuple[str, ...]] = {
    # documented for request bodies (§6)
    "lines": ("line",),
    "names": ("name",),
    "addressLines": ("addressLine",),
    "properties": ("property",),
    "documents": ("document",),
    "notes": ("note",),
    "labels": ("label",),
    "deliverySchedule": ("deliveryScheduleLine",),
    "deliveryHistory": ("deliveryHistoryLine",),
    "chargeLines": ("chargeLine",),
    "dimensions": ("dimension",),
    # not published: the same convention guessed
    "loadCarriers": ("loadCarrier",),
    "destinations": ("destination",),
    "invoiceNumbers": ("invoiceNumber",),
    "contacts": ("contact",),
    "deliveryScheduleIncludingRequests": (
        "deliveryScheduleIncludingRequestsLine",
        "deliveryScheduleLineIncludingRequests",
    ),
    "deliveryScheduleInclRequests": (
        "deliveryScheduleInclRequestsLine",
        "deliveryScheduleLineInclRequests",
    ),
}

_FLAGS = {"true": True, "false": False}
_JSON_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_XML_BAD_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

ScalarType = Literal["str", "number", "int", "bool", "any"]
SlotKind = Literal["scalar", "object", "list", "map", "any"]


# -- what the models say about each element --------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Slot:
    key: str  # the JSON key the value is stored under
    kind: SlotKind
    scalar: ScalarType = "any"  # scalar fields and scalar list items
    model: type[BaseModel] | None = None  # object fields and object list items
    item_kind: SlotKind = "any"  # list items: "scalar", "object", "map" or "any"
    item_names: tuple[str, ...] = ()


def _strip(annotation: Any) -> Any:
    """Drop ``None`` from an optional and unwrap ``Annotated``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return Any
            annotation = args[0]
        else:
            return annotation


def _classify(annotation: Any) -> tuple[SlotKind, ScalarType, type[BaseModel] | None]:
    tp = _strip(annotation)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "object", "any", tp
    if origin in (dict, Mapping):
        return "map", "any", None
    if tp is bool:
        return "scalar", "bool", None
    if tp is int:
        return "scalar", "int", None
    if tp in (Decimal, float):
        return "scalar", "number", None
    if tp is str:
        return "scalar", "str", None
    return "any", "any", None


def _input_keys(name: str, info: Any) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str)]
    if isinstance(alias, str):
        return [alias]
    return [info.alias or name]


@cache
def _elements(model: type[BaseModel]) -> dict[str, tuple[_Slot, bool]]:
    """Element name -> (slot, is an item name) for the fields of ``model``."""
    direct: dict[str, tuple[_Slot, bool]] = {}
    items: dict[str, tuple[_Slot, bool]] = {}
    for name, info in model.model_fields.items():
        tp = _strip(info.annotation)
        for key in _input_keys(name, info):
            if typing.get_origin(tp) is list:
                (item_arg,) = typing.get_args(tp)
                item_kind, scalar, item_model = _classify(item_arg)
                names = XML_ITEM_NAMES.get(key, ())
                slot = _Slot(key, "list", scalar, item_model, item_kind, names)
                direct[key] = (slot, False)
                for item_name in names:
                    items[item_name] = (slot, True)
            else:
                kind, scalar, sub = _classify(tp)
                direct[key] = (_Slot(key, kind, scalar, sub), False)
    # tXML only exists since 2023, so an item name beats a field of an older JSON shape
    # (``locations.destination`` of 2021 versus items of ``locations.destinations``).
    return {**direct, **items}


# -- parsing ---------------------------------------------------------------------------------


class _Node:
    __slots__ = ("children", "nil", "tag", "text")

    def __init__(self, tag: str, nil: bool) -> None:
        self.tag = tag
        self.nil = nil
        self.children: list[_Node] = []
        self.text: list[str] = []

    def blank(self) -> bool:
        return not self.children and not "".join(self.text).strip()

    def string(self) -> str:
        return "".join(self.text)


class _Refused(Exception):
    pass


class _Builder:
    """Expat handlers building a light tree, enforcing the depth and size limits as they go."""

    def __init__(self, max_depth: int, max_elements: int) -> None:
        self.max_depth = max_depth
        self.max_elements = max_elements
        self.stack: list[_Node] = []
        self.root: _Node | None = None
        self.count = 0
        self.attributes = 0

    def start(self, name: str, attributes: list[str]) -> None:
        self.count += 1
        if self.count > self.max_elements:
            raise _Refused(f"more than {self.max_elements} elements")
        held = len(attributes) // 2
        self.attributes += held
        if held > MAX_ELEMENT_ATTRIBUTES:
            raise _Refused(f"an element with more than {MAX_ELEMENT_ATTRIBUTES} attributes")
        if self.attributes > MAX_ATTRIBUTES:
            raise _Refused(f"more than {MAX_ATTRIBUTES} attributes")
        if len(self.stack) >= self.max_depth:
            raise _Refused(f"elements nested deeper than {self.max_depth} levels")
        nil = False
        for i in range(0, len(attributes), 2):  # ordered_attributes: name, value, name, value…
            if attributes[i] == _NIL:
                nil = attributes[i + 1].strip() in ("true", "1")
        node = _Node(name.rpartition(_NS_SEP)[2], nil)
        if self.stack:
            self.stack[-1].children.append(node)
        else:
            self.root = node
        self.stack.append(node)

    def end(self, name: str) -> None:
        self.stack.pop()

    def data(self, text: str) -> None:
        if self.stack:
            self.stack[-1].text.append(text)


def _check_declaration(version: str | None, encoding: str | None, standalone: int) -> None:
    if encoding is not None and encoding.strip().lower() not in ("utf-8", "utf8"):
        raise _Refused(f"the XML declares encoding {encoding!r}; only UTF-8 is accepted")


def _parse_tree(body: bytes, max_depth: int, max_elements: int) -> _Node:
    try:
        # expat would honour a UTF-16 byte-order mark; the contract allows UTF-8 only.
        body.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise InvalidBody(f"body is not valid UTF-8 (byte {bad.start})") from None
    if b"\x00" in body:  # XML forbids NUL; expat would read BOM-less UTF-16 from it
        raise InvalidBody("body is not UTF-8 XML: it contains NUL bytes")
    builder = _Builder(max_depth, max_elements)
    # defusedxml installs its DTD, entity and external-reference guards on the expat parser;
    # the element handlers then go straight to the builder, skipping ElementTree's Python layer.
    defused = DefusedXMLParser(
        encoding="utf-8",  # overrides whatever the document declares; checked below as well
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    parser = defused.parser  # created by ElementTree with "}" as namespace separator
    parser.buffer_text = True
    parser.ordered_attributes = True
    parser.DefaultHandlerExpand = None  # expat itself then refuses undeclared entities
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.XmlDeclHandler = _check_declaration
    try:
        parser.Parse(body, True)
    except DefusedXmlException:
        raise InvalidBody(
            "body is refused: XML with a DOCTYPE, entity declarations or external references "
            "is not accepted"
        ) from None
    except _Refused as exc:
        raise InvalidBody(f"body is refused: {exc}") from None
    except ExpatError as exc:
        raise InvalidBody(f"body is not well-formed UTF-8 XML: {exc}") from None
    if builder.root is None:  # pragma: no cover - expat refuses a document without root
        raise InvalidBody("body is not well-formed XML: no root element")
    return builder.root


def xml_to_data(
    body: bytes,
    model: type[BaseModel] | None = None,
    *,
    max_depth: int = MAX_DEPTH,
    max_elements: int = MAX_ELEMENTS,
) -> dict[str, Any]:
    """Read a tXML body into the dict its JSON form would give; ``model`` types the fields
    (declared decimals as exact ``Decimal``, as ``json.loads(..., parse_float=Decimal)`` reads them).

    Raises ``InvalidBody`` for XML that is malformed, not UTF-8, has a DTD or breaks a limit.
    """
    if not body.strip():
        raise InvalidBody("body is empty")
    root = _parse_tree(body, max_depth, max_elements)
    if not root.children and root.string().strip():
        raise InvalidBody(f"body is not a tXML object: root <{root.tag}> holds text, not elements")
    return _object(root, model, "")


def _object(node: _Node, model: type[BaseModel] | None, path: str) -> dict[str, Any]:
    known = _elements(model) if model is not None else {}
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for child in node.children:
        entry = known.get(child.tag)
        if entry is None:
            _put_repeatable(out, repeated, child.tag, _generic(child, f"{path}{child.tag}."))
            continue
        slot, is_item = entry
        where = f"{path}{slot.key}"
        if slot.kind == "list":
            _put_list(out, slot, child, is_item, where)
            continue
        if slot.key in out:
            raise InvalidBody(f"{where}: element <{child.tag}> is repeated, but the field is not a list")
        out[slot.key] = _value(child, slot.kind, slot.scalar, slot.model, where)
    return out


def _put_list(out: dict[str, Any], slot: _Slot, node: _Node, is_item: bool, where: str) -> None:
    current = out.get(slot.key)
    if node.nil and not is_item:
        if slot.key not in out:
            out[slot.key] = None
        return
    if current is None:
        current = out[slot.key] = []
    if is_item:
        current.append(_item(node, slot, f"{where}[{len(current)}]"))
    elif node.blank():
        pass  # ``<notes/>``: an empty array
    elif node.children and all(c.tag in slot.item_names for c in node.children):
        for child in node.children:  # a wrapper element around the items
            current.append(_item(child, slot, f"{where}[{len(current)}]"))
    else:  # the array key itself repeated per item
        current.append(_item(node, slot, f"{where}[{len(current)}]"))


def _item(node: _Node, slot: _Slot, where: str) -> Any:
    return _value(node, slot.item_kind, slot.scalar, slot.model, where)


def _value(
    node: _Node, kind: SlotKind, scalar: ScalarType, model: type[BaseModel] | None, where: str
) -> Any:
    if node.nil:
        return None
    if kind == "object":
        if node.children:
            return _object(node, model, where + ".")
        # Text where an object belongs is left for the model to report.
        return {} if node.blank() else node.string()
    if kind == "map":
        if node.children:
            return _generic(node, where + ".")
        return {} if node.blank() else node.string()
    if kind == "scalar" and not node.children:
        return _scalar(node.string(), scalar)
    return _generic(node, where + ".")


def _scalar(text: str, scalar: ScalarType) -> Any:
    if scalar == "number" or scalar == "int":
        s = text.strip()
        try:
            if _JSON_INT.fullmatch(s):
                return int(s)
            if scalar == "number" and _JSON_NUMBER.fullmatch(s):
                return Decimal(s)  # exact: quantities and prices keep every digit
        except (ValueError, ArithmeticError):  # more digits than int() converts, an exponent Decimal cannot hold
            return text
        return text
    if scalar == "bool":
        s = text.strip()
        if s == "true":
            return True
        if s == "false":
            return False
    return text


def _generic(node: _Node, path: str) -> Any:
    if node.nil:
        return None
    if not node.children:
        text = node.string()
        # An undeclared flag: "false" kept as text would be true for any handler that tests it.
        return _FLAGS.get(text.strip(), text)
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for child in node.children:
        _put_repeatable(out, repeated, child.tag, _generic(child, f"{path}{child.tag}."))
    return out


def _put_repeatable(out: dict[str, Any], repeated: set[str], key: str, value: Any) -> None:
    """Store an unknown element; its second occurrence turns the value into a list."""
    if key not in out:
        out[key] = value
    elif key in repeated:
        out[key].append(value)
    else:
        out[key] = [out[key], value]
        repeated.add(key)


# -- writing ---------------------------------------------------------------------------------


def data_to_xml(data: Mapping[str, Any], root: str = "webhook") -> bytes:
    """Write a JSON-shaped dict as tXML (UTF-8, with declaration), the inverse of ``xml_to_data``.

    Raises ``ValueError`` for what XML cannot carry: keys that are not XML names, nested
    arrays, non-finite numbers or characters XML 1.0 forbids.
    """
    parts: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>']
    _emit(parts, root, data)
    return "".join(parts).encode("utf-8")


def _emit(parts: list[str], name: str, value: Any) -> None:
    if not _XML_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not usable as an XML element name")
    if value is None:
        parts.append(f'<{name} xmlns:xsi="{XSI_NS}" xsi:nil="true"/>')
    elif isinstance(value, Mapping):
        parts.append(f"<{name}>")
        for key, item in value.items():
            if isinstance(item, list | tuple):
                _emit_array(parts, str(key), item)
            else:
                _emit(parts, str(key), item)
        parts.append(f"</{name}>")
    elif isinstance(value, list | tuple):
        raise ValueError(f"<{name}>: an array inside an array has no tXML form")
    else:
        parts.append(f"<{name}>{_text(value)}</{name}>")


def _emit_array(parts: list[str], key: str, items: list[Any] | tuple[Any, ...]) -> None:
    if not items:
        if not _XML_NAME.fullmatch(key):
            raise ValueError(f"{key!r} is not usable as an XML element name")
        parts.append(f"<{key}/>")
        return
    item_name = XML_ITEM_NAMES.get(key, (key,))[0]
    for item in items:
        _emit(parts, item_name, item)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no JSON or tXML form")
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value!r} has no JSON or tXML form")
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if not isinstance(value, str):
        raise ValueError(f"a {type(value).__name__} has no tXML form")
    if _XML_BAD_CHARS.search(value):
        raise ValueError("text holds a character XML 1.0 cannot carry")
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", "&#13;")
    )
