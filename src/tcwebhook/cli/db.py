"""``tcwebhook db …``: the store itself — schema, row counts, copying between stores, retention.

``migrate`` and ``status`` open the store of ``--config`` like ``serve`` does (which creates or
migrates the schema, under an advisory lock on PostgreSQL); ``copy`` works on two URLs and needs
no config; ``prune`` deletes delivered events older than a span, the same as ``[store] retention``.
Exit codes: 0 done, 1 failed (a count check, a store error), 3 start-up.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tcwebhook.audit import AuditEntry, AuditLog, cli_entry
from tcwebhook.cli.inbox import require_store
from tcwebhook.cli.options import ConfigOption, startup_guard
from tcwebhook.config import LoggingSettings, Settings, StoreSettings, load_settings, parse_duration
from tcwebhook.errors import StartupError, StoreError
from tcwebhook.inbox.base import Inbox, StoreInfo
from tcwebhook.inbox.factory import open_inbox
from tcwebhook.logs import configure_logging
from tcwebhook.storeurl import check_store_url, redact_url
from tcwebhook.terminal import markup_safe

T = TypeVar("T")

db_app = typer.Typer(
    rich_markup_mode="markdown",
    help="The inbox store: schema, row counts, copying between stores, retention.", no_args_is_help=True
)

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")


def _settings(config: Path | None) -> Settings:
    settings = startup_guard(lambda: load_settings(config))
    quiet = LoggingSettings(level="warning", format=settings.logging.format)
    configure_logging(settings.model_copy(update={"logging": quiet}), stream=sys.stderr)
    return settings


def _with_inbox(config: Path | None, action: Callable[[Inbox], Awaitable[T]], *, create: bool = False) -> T:
    settings = _settings(config)
    if not create:
        require_store(settings, config)

    async def main() -> T:
        inbox = open_inbox(settings, hold_new=False)
        await inbox.open()
        try:
            return await action(inbox)
        finally:
            await inbox.close()

    try:
        return startup_guard(lambda: asyncio.run(main()))
    except StoreError as exc:
        err.print(f"[red]store error:[/red] {markup_safe(exc)}")
        raise typer.Exit(1) from None


def _info_json(info: StoreInfo) -> dict[str, Any]:
    return {
        "engine": info.engine,
        "location": info.location,
        "schema_version": info.schema_version,
        "rows": dict(info.rows),
        "events": dict(info.events),
    }


@db_app.command("migrate")
def migrate(config: ConfigOption = None) -> None:
    """Create or migrate the schema now (serve and worker also do it at start-up)."""
    info = _with_inbox(config, lambda inbox: inbox.describe(), create=True)
    if info.schema_found == info.schema_version:
        out.print(f"{info.engine} store {info.location}: schema version {info.schema_version}, up to date")
    else:
        out.print(
            f"{info.engine} store {info.location}: schema migrated from version {info.schema_found} "
            f"to {info.schema_version}"
        )


@db_app.command("status")
def status(config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """Print the schema version and the row counts of the store."""
    info = _with_inbox(config, lambda inbox: inbox.describe())
    if json_output:
        typer.echo(orjson.dumps(_info_json(info), option=orjson.OPT_INDENT_2).decode())
        return
    out.print(f"{info.engine} store {info.location}, schema version {info.schema_version}")
    table = Table(title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in info.rows.items():
        table.add_row(name, f"{count:,}")
    for name, count in sorted(info.events.items()):
        table.add_row(f"  events {name}", f"{count:,}")
    out.print(table)


@db_app.command("copy")
def copy(
    source: Annotated[str, typer.Option("--from", help="Store to read: sqlite:///path or postgresql://…")],
    destination: Annotated[str, typer.Option("--to", help="Store to fill (created if needed).")],
    batch: Annotated[int, typer.Option(min=1, help="Events per destination transaction.")] = 500,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Copy an inbox to another store: resumable (rerun after an interruption) and idempotent."""
    from tcwebhook.inbox.copy import copy_store

    configure_logging(Settings(logging=LoggingSettings(level="warning")), stream=sys.stderr)
    for option, url in (("--from", source), ("--to", destination)):
        startup_guard(partial(_checked_url, option, url))
    progress = Progress(
        TextColumn("copying events"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
    )
    started = time.monotonic()
    with progress:
        task = progress.add_task("copy", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            check = startup_guard(lambda: copy_store(source, destination, batch=batch, progress=advance))
        except StoreError as exc:
            err.print(f"[red]store error:[/red] {markup_safe(exc)}")
            raise typer.Exit(1) from None
    table = Table(title="row counts", title_justify="left")
    table.add_column("table")
    table.add_column("source", justify="right")
    table.add_column("destination", justify="right")
    for name, count in check.source.items():
        table.add_row(name, f"{count:,}", f"{check.destination.get(name, 0):,}")
    err.print(table)
    if not check.ok:
        err.print("[red]count check failed:[/red] the destination has fewer rows than the source")
        raise typer.Exit(1)
    asyncio.run(_record_copy(destination, cli_entry("db.copy", redact_url(destination), source=redact_url(source),
                                                    events=check.source.get("events", 0))))
    note = "" if check.exact else " (the destination also holds rows of its own)"
    out.print(f"copied in {time.monotonic() - started:.1f} s; counts match{note}")


async def _record_copy(url: str, entry: AuditEntry) -> None:
    """The copy, in the audit log of the store it filled (the chain there goes on from its own)."""
    inbox = open_inbox(Settings(store=StoreSettings(url=url)), hold_new=False)
    await inbox.open()
    try:
        await AuditLog(inbox).record(entry)
    finally:
        await inbox.close()


def _checked_url(option: str, url: str) -> None:
    try:
        check_store_url(url)
    except ValueError as exc:
        raise StartupError(f"{option} {redact_url(url)} {exc}.") from None


@db_app.command("prune")
def prune(
    config: ConfigOption = None,
    delivered_older_than: Annotated[
        str, typer.Option("--delivered-older-than", help="Delete events delivered longer ago than this: 30d, 12h.")
    ] = "30d",
    batch: Annotated[int, typer.Option(min=1, help="Events per transaction.")] = 500,
    json_output: JsonOption = False,
) -> None:
    """Delete delivered (and superseded) events and their attempts; never pending or dead ones."""
    try:
        span = parse_duration(delivered_older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--delivered-older-than") from None
    before = time.time() - span

    async def action(inbox: Inbox) -> int:
        total = 0
        while True:
            count = await inbox.prune(before, batch)
            total += count
            if count < batch:
                await AuditLog(inbox).record(
                    cli_entry("db.prune", "delivered events", deleted=total, older_than=delivered_older_than)
                )
                return total

    deleted = _with_inbox(config, action)
    if json_output:
        typer.echo(orjson.dumps({"deleted": deleted, "older_than_seconds": span}).decode())
    else:
        out.print(f"deleted {deleted:,} delivered event(s) older than {delivered_older_than}")
