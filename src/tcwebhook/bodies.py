"""Stored bodies made readable for people: JSON and XML indented (CLI and console alike).

Indenting costs far more than the body's size: minidom builds a node object per element and
attribute (a 10 MB XML body took 15 s and 900 MB), so only bodies under ``MAX_INDENT_BYTES``
and ``MAX_INDENT_ITEMS`` are indented. A larger one is shown as received, its first
``SHOWN_BYTES`` only; the exact bytes are a download away.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

MAX_INDENT_BYTES = 1024 * 1024
MAX_INDENT_ITEMS = 20_000  # XML tags ('<'), JSON values (',' '{' '['): counted at C speed
SHOWN_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Readable:
    text: str
    lexer: str  # "json" | "xml" | "text"
    truncated: bool = False  # ``text`` is the start of the body as received, not all of it


def readable_body(body: bytes, content_type: str) -> Readable | None:
    """The body for people, within the indenting bounds; None when it is not UTF-8."""
    if len(body) > MAX_INDENT_BYTES or _items(body) > MAX_INDENT_ITEMS:
        return _head(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    stripped = text.lstrip()
    if "json" in content_type or stripped.startswith(("{", "[")):
        try:
            return Readable(orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode(), "json")
        except orjson.JSONDecodeError:
            return Readable(text, "text")
    if "xml" in content_type or stripped.startswith("<"):
        from defusedxml import minidom

        try:
            pretty = minidom.parseString(body).toprettyxml(indent="  ")
        except Exception:  # any parse failure (or a refused entity): show it as received
            return Readable(text, "text")
        return Readable("\n".join(line for line in pretty.splitlines() if line.strip()), "xml")
    return Readable(text, "text")


def indent_body(body: bytes, content_type: str) -> tuple[str, str] | None:
    """(text, "json" | "xml" | "text") with JSON and XML indented; None when not UTF-8."""
    found = readable_body(body, content_type)
    return None if found is None else (found.text, found.lexer)


def _items(body: bytes) -> int:
    return max(body.count(b"<"), body.count(b",") + body.count(b"{") + body.count(b"["))


def _head(body: bytes) -> Readable | None:
    head = body[:SHOWN_BYTES]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # invalid before the cut, not a character the cut split
            return None
        text = head[: exc.start].decode("utf-8")
    return Readable(text, "text", truncated=len(body) > len(head))
