"""Stored bodies made readable for people: JSON and XML indented (CLI and console alike)."""

from __future__ import annotations

import orjson


def indent_body(body: bytes, content_type: str) -> tuple[str, str] | None:
    """(text, "json" | "xml" | "text") with JSON and XML indented; None when not UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    stripped = text.lstrip()
    if "json" in content_type or stripped.startswith(("{", "[")):
        try:
            return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode(), "json"
        except orjson.JSONDecodeError:
            return text, "text"
    if "xml" in content_type or stripped.startswith("<"):
        from defusedxml import minidom

        try:
            pretty = minidom.parseString(body).toprettyxml(indent="  ")
        except Exception:  # any parse failure (or a refused entity): show it as received
            return text, "text"
        return "\n".join(line for line in pretty.splitlines() if line.strip()), "xml"
    return text, "text"
