"""``tcwebhook quarantine``: inspect and reprocess request bodies that were rejected."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.syntax import Syntax
from rich.table import Table

from tcwebhook.audit import cli_entry
from tcwebhook.cli.inbox import JsonOption, LimitOption, record, with_inbox
from tcwebhook.cli.options import ConfigOption
from tcwebhook.cli.output import body_json, emit, err, iso, pretty, progress_bar, stdout_console, when
from tcwebhook.config import Settings
from tcwebhook.errors import ContractError, EventNotFound
from tcwebhook.inbox.base import Inbox, QuarantineEntry
from tcwebhook.receiver.reparse import reparsed
from tcwebhook.terminal import cell, markup_safe

quarantine_app = typer.Typer(
    rich_markup_mode="markdown",
    help="Inspect and reprocess request bodies that were rejected.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(quarantine_app, name="quarantine")


def _quarantine_json(q: QuarantineEntry) -> dict[str, Any]:
    return {
        "id": q.id,
        "received_at": iso(q.received_at),
        "route": q.route,
        "content_type": q.content_type,
        "status_code": q.status_code,
        "reason": q.reason,
        "size": len(q.body),
        "reprocessed_event_id": q.reprocessed_event_id,
    }


@quarantine_app.command("list")
def quarantine_list(config: ConfigOption = None, limit: LimitOption = 100, json_output: JsonOption = False) -> None:
    """List rejected bodies, newest first."""
    entries = with_inbox(config, lambda _s, inbox: inbox.list_quarantined(limit))
    if json_output:
        emit([_quarantine_json(q) for q in entries])
        return
    table = Table(title=f"{len(entries)} quarantined bodies, newest first", title_justify="left")
    table.add_column("received (UTC)", no_wrap=True)
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("route", "status", "reason"):
        table.add_column(column)
    table.add_column("reprocessed as", no_wrap=True)
    for q in entries:
        table.add_row(
            when(q.received_at),
            cell(q.id),
            cell(q.route),
            str(q.status_code),
            cell(q.reason),  # quotes the refused body
            cell(q.reprocessed_event_id),
        )
    stdout_console().print(table)


@quarantine_app.command("show")
def quarantine_show(
    quarantine_id: Annotated[str, typer.Argument(help="The quarantine id.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one rejected body with its reason and headers."""
    entry = with_inbox(config, lambda _s, inbox: inbox.get_quarantined(quarantine_id))
    if json_output:
        emit({**_quarantine_json(entry), "headers": dict(entry.headers), **body_json(entry.body)})
        return
    out = stdout_console()
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column()
    for name, value in _quarantine_json(entry).items():
        fields.add_row(name, cell(value))
    out.print(fields)
    if entry.headers:
        out.print("\n[bold]headers[/bold]")
        for name, value in entry.headers.items():
            out.print(f"  {markup_safe(name)}: {markup_safe(value)}")
    text, lexer = pretty(entry.body, entry.content_type)
    shown_type = markup_safe(entry.content_type or "no content type")
    out.print(f"\n[bold]body[/bold] ({shown_type}, {len(entry.body)} bytes)")
    out.print(Syntax(text, lexer, word_wrap=True, theme="ansi_dark"))


@quarantine_app.command("reprocess")
def quarantine_reprocess(
    quarantine_ids: Annotated[list[str], typer.Argument(help="Quarantine ids.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Parse rejected bodies again (after an upgrade or a fix) and store those that pass as events."""

    async def action(settings: Settings, inbox: Inbox) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        with progress_bar("Reprocessing", json_output or len(quarantine_ids) < 2) as progress:
            task = progress.add_task("reprocess", total=len(quarantine_ids))
            for qid in quarantine_ids:
                row: dict[str, Any] = {"id": qid, "event_id": None, "duplicate": False, "error": None}
                try:
                    entry = await inbox.get_quarantined(qid)
                    stored = await inbox.reprocess_quarantined(qid, reparsed(entry, settings.server.max_body_bytes))
                    row.update(event_id=stored.event_id, duplicate=stored.duplicate)
                except (ContractError, EventNotFound) as exc:
                    row["error"] = str(exc)
                outcome = "ok" if row["error"] is None else "refused"
                await record(inbox, settings, cli_entry("quarantine.reprocess", qid, outcome, event_id=row["event_id"]))
                results.append(row)
                progress.advance(task)
        return results

    results = with_inbox(config, action)
    if json_output:
        emit(results)
    else:
        out = stdout_console()
        for row in results:
            if row["error"]:
                err.print(f"[red]{markup_safe(row['id'])}[/red]: {markup_safe(row['error'])}")
            else:
                note = " (already stored: duplicate)" if row["duplicate"] else ""
                out.print(f"{markup_safe(row['id'])} -> event [bold]{markup_safe(row['event_id'])}[/bold]{note}")
    if any(row["error"] for row in results):
        raise typer.Exit(1)


@quarantine_app.command("delete")
def quarantine_delete(
    quarantine_ids: Annotated[list[str], typer.Argument(help="Quarantine ids of bodies that are junk.")],
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
) -> None:
    """Delete rejected bodies that are junk (asks first; the bodies cannot be reprocessed afterwards)."""

    async def action(settings: Settings, inbox: Inbox) -> list[str]:
        entries = [await inbox.get_quarantined(qid) for qid in quarantine_ids]  # all found, or exit 1
        if not yes:
            for entry in entries:
                err.print(
                    f"{markup_safe(entry.id)}: {entry.status_code} {markup_safe(entry.reason)}, "
                    f"{len(entry.body)} bytes of {markup_safe(entry.content_type or 'no content type')}"
                )
            if not typer.confirm(f"Delete {len(entries)} quarantined bod{'y' if len(entries) == 1 else 'ies'}?",
                                 err=True):
                err.print("Nothing was deleted.")
                raise typer.Exit(1)
        for entry in entries:
            await inbox.delete_quarantined(entry.id)
            await record(inbox, settings, cli_entry("quarantine.delete", entry.id, reason=entry.reason[:200],
                                                    size=len(entry.body)))
        return [entry.id for entry in entries]

    deleted = with_inbox(config, action)
    stdout_console().print(f"Deleted {len(deleted)} quarantined bod{'y' if len(deleted) == 1 else 'ies'}.")
