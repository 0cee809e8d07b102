"""What the operator commands share: their settings, the store they open, options and time spans.

They open the same store as ``serve`` (same ``--config``) and work while it runs: reads use their
own connections, and a replay is picked up by the running dispatcher at its next poll. They never
create a store: run from the wrong directory they say where they looked instead of showing an
empty one. Exit codes: 0 done, 1 something was not found or failed, 3 start-up.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from tcwebhook.audit import AuditEntry, AuditLog
from tcwebhook.cli.options import startup_guard
from tcwebhook.cli.output import err
from tcwebhook.config import LoggingSettings, Settings, config_source, load_settings
from tcwebhook.errors import EventNotFound, StoreError
from tcwebhook.inbox.base import Inbox
from tcwebhook.inbox.factory import open_inbox
from tcwebhook.logs import configure_logging, secret_values
from tcwebhook.terminal import markup_safe

T = TypeVar("T")

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many rows.")]


class _Stderr:
    """Log lines go to whatever ``sys.stderr`` is when they are written."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def command_settings(config: Path | None) -> Settings:
    settings = startup_guard(lambda: load_settings(config))
    # Only warnings, and on stderr: stdout belongs to the tables and the JSON.
    quiet = LoggingSettings(level="warning", format=settings.logging.format)
    configure_logging(settings.model_copy(update={"logging": quiet}), stream=_Stderr())
    return settings


def missing_store(settings: Settings, config: Path | None) -> str | None:
    """Where a SQLite store was looked for, when there is none (None when it exists)."""
    url = settings.store_url
    if "://" in url and not url.lower().startswith("sqlite"):
        return None
    from tcwebhook.inbox.sqlite import sqlite_path

    path = startup_guard(lambda: sqlite_path(url))
    if path.exists():
        return None
    source = config_source(config)
    origin = (
        f"the store of {source}"
        if source is not None
        else f"the default store: there is no tcwebhook.toml in {Path.cwd()} and no --config"
    )
    return f"no inbox at {path.absolute()} ({origin}); run the command with --config, or start serve once"


def require_store(settings: Settings, config: Path | None) -> None:
    """Exit 1 with where it looked when the configured store does not exist yet."""
    missing = missing_store(settings, config)
    if missing is not None:
        print(f"tcwebhook: {missing}.", file=sys.stderr)
        raise typer.Exit(1)


async def record(inbox: Inbox, settings: Settings, entry: AuditEntry) -> None:
    """Append a CLI action to the store's audit log (its secrets scrubbed from the detail)."""
    await AuditLog(inbox, secret_values(settings)).record(entry)


def with_inbox(config: Path | None, action: Callable[[Settings, Inbox], Awaitable[T]]) -> T:
    settings = command_settings(config)
    require_store(settings, config)

    async def main() -> T:
        # Events stored from here (reprocess) go to the background loop even in sync mode.
        inbox = open_inbox(settings, hold_new=False)
        await inbox.open()
        try:
            return await action(settings, inbox)
        finally:
            await inbox.close()

    try:
        return startup_guard(lambda: asyncio.run(main()))
    except EventNotFound as exc:
        err.print(f"[red]not found:[/red] {markup_safe(exc)}")
        raise typer.Exit(1) from None
    except StoreError as exc:
        err.print(f"[red]store error:[/red] {markup_safe(exc)}")
        raise typer.Exit(1) from None


def parse_time(value: str | None) -> datetime | None:
    """ISO 8601 (a zone-less time is UTC) or a span back from now: ``90s``, ``30m``, ``2h``, ``7d``."""
    if value is None:
        return None
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = float(relative.group(1)), relative.group(2)
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither ISO 8601 nor a span like 30m, 2h, 7d") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
