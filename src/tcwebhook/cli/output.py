"""How the operator commands print: tables and progress for people, JSON for scripts.

Progress bars and log lines go to stderr, so ``--json`` output on stdout stays plain JSON.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tcwebhook.bodies import indent_body
from tcwebhook.terminal import visible

err = Console(stderr=True, highlight=False)

_STYLE = {"pending": "yellow", "delivered": "green", "dead": "bold red", "superseded": "dim", "stored": "cyan",
          "unrecognised": "magenta"}


def stdout_console() -> Console:
    # Piped into a file or a pager there is no terminal width: do not cut ids to fit 80 columns.
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200
    return console


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def status_markup(status: str) -> str:
    return f"[{_STYLE.get(status, 'white')}]{status}[/]"


def emit(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def body_json(body: bytes) -> dict[str, str]:
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode("ascii")}


def pretty(body: bytes, content_type: str) -> tuple[str, str]:
    """The body for people: (text, lexer), control characters made visible."""
    text, lexer = _indented(body, content_type)
    return visible(text, keep_lines=True), lexer


def _indented(body: bytes, content_type: str) -> tuple[str, str]:
    """JSON and XML indented; anything else as is."""
    return indent_body(body, content_type) or (f"<{len(body)} bytes, not UTF-8>", "text")


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def progress_bar(description: str, quiet: bool) -> Progress:
    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
    )
