"""User templates (Jinja2) for an ERP's own XML, fixed-width or JSON files.

Templates run in Jinja2's sandbox: they read the data they are given and call nothing unsafe.
Names ending in ``.xml``, ``.html`` (also before a ``.j2``/``.jinja`` suffix) are autoescaped.
A template that does not compile is a start-up error; one that fails while rendering raises
``PermanentError`` naming the template file and line, so the delivery is dead-lettered with
the place to fix.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from tcwebhook.errors import PermanentError, StartupError
from tcwebhook.formats.typed import decimal_text

_TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2")
_ESCAPED = (".xml", ".html", ".htm")
_MESSAGE_LIMIT = 300


def output_name(path: Path) -> str:
    """The name a template's output takes: ``order.xml.j2`` -> ``order.xml``."""
    name = path.name
    for suffix in _TEMPLATE_SUFFIXES:
        if name.lower().endswith(suffix) and name[: -len(suffix)]:
            return name[: -len(suffix)]
    return name


def _number(value: Any, places: int | None = None, point: str = ".") -> str:
    """``{{ x|number }}``, ``{{ x|number(2, ",") }}``: exact decimal text, optionally to ``places``."""
    if value is None or value == "":
        return ""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if places is not None:
        text = f"{number:.{places}f}"
        return text if point == "." else text.replace(".", point)
    return decimal_text(number, point)


def _ljust(value: Any, width: int, fill: str = " ") -> str:
    """``{{ x|ljust(10) }}``: left-aligned in exactly ``width`` characters (cut when longer)."""
    return ("" if value is None else str(value)).ljust(width, fill)[:width]


def _rjust(value: Any, width: int, fill: str = " ") -> str:
    text = "" if value is None else str(value)
    return text.rjust(width, fill)[-width:] if len(text) <= width else text[:width]


def _tojson(value: Any) -> str:
    from tcwebhook.formats.typed import json_bytes

    return json_bytes(value).decode().rstrip("\n")


def _template_line(tb: TracebackType | None, filename: str) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


class Template:
    """One compiled template file."""

    def __init__(self, path: Path, *, sink: str) -> None:
        self.path = Path(path)
        self.sink = sink
        self.output_name = output_name(self.path)
        self.extension = Path(self.output_name).suffix or ".txt"
        guessed = mimetypes.guess_type(self.output_name)[0] or "text/plain"
        self.content_type = f"{guessed}; charset=utf-8"
        escaped = self.output_name.lower().endswith(_ESCAPED)
        env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(self.path.parent)),
            autoescape=escaped,
            undefined=jinja2.ChainableUndefined,
            keep_trailing_newline=True,
        )
        env.filters.update(number=_number, ljust=_ljust, rjust=_rjust, tojson=_tojson)
        try:
            self._template = env.get_template(self.path.name)
        except jinja2.TemplateSyntaxError as exc:
            raise StartupError(
                f"Sink {sink!r}: template {self.path} does not compile at line {exc.lineno} "
                f"({_short(exc.message or 'syntax error')}); fix the template."
            ) from None
        except (jinja2.TemplateNotFound, OSError):
            raise StartupError(f"Sink {sink!r}: template {self.path} cannot be read; check the path.") from None
        except UnicodeDecodeError:
            raise StartupError(f"Sink {sink!r}: template {self.path} is not UTF-8 text; save it as UTF-8.") from None
        self.filename = self._template.filename or str(self.path)

    def render(self, context: Mapping[str, Any]) -> bytes:
        try:
            return self._template.render(context).encode("utf-8")
        except Exception as exc:
            line = _template_line(exc.__traceback__, self.filename)
            where = f"{self.path}" + (f" line {line}" if line is not None else "")
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise PermanentError(f"template {where} failed: {_short(reason)}") from None
