"""Text from webhook bodies and requests on its way to an operator's terminal.

Purchase order numbers, paths, headers and error messages are chosen by whoever sends the
request. Written raw, an escape sequence among them moves the cursor, rewrites earlier lines
or sets the window title; in a Rich table, ``[/]`` breaks the rendering (``MarkupError``) and
``[link=...]`` forges a link. ``visible`` turns every control character into its ``\\xNN`` form
and ``cell`` makes a Rich ``Text`` of the result, which Rich never reads as markup.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

from rich.markup import escape
from rich.text import Text

# C0 and C1 controls, DEL, and the bidirectional overrides and isolates that reorder a line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_KEEP_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object, *, keep_lines: bool = False) -> str:
    """``str(value)`` with control characters as ``\\xNN`` (newlines and tabs kept if asked)."""
    text = "" if value is None else str(value)
    return (_CONTROL_KEEP_LINES if keep_lines else _CONTROL).sub(_shown, text)


def cell(value: object) -> Text:
    """A table cell or field showing ``value`` as plain text: no markup, no control characters."""
    return Text(visible(value))


def markup_safe(value: object) -> str:
    """``value`` for an f-string that is printed with Rich markup around it."""
    return escape(visible(value))


def escape_log_values(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor for the console format: control characters in values made visible."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = visible(value)
    return event_dict
