"""``tcwebhook audit``: the operators' audit log — list, verify the hash chain, export for a SIEM."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
import typer
from rich.table import Table

from tcwebhook.audit import AuditRecord, ChainReport, verify
from tcwebhook.cli.inbox import JsonOption, parse_time, with_inbox
from tcwebhook.cli.options import ConfigOption
from tcwebhook.cli.output import emit, err, stdout_console
from tcwebhook.config import Settings
from tcwebhook.inbox.base import Inbox
from tcwebhook.terminal import cell

audit_app = typer.Typer(
    rich_markup_mode="markdown",
    help="The operators' audit log: who replayed, reprocessed, deleted or signed in, and when.",
    no_args_is_help=True,
)
_PAGE = 1000


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


async def _all(inbox: Inbox, since: float | None, actor: str | None, limit: int | None) -> list[AuditRecord]:
    found: list[AuditRecord] = []
    after = 0
    while limit is None or len(found) < limit:
        page = await inbox.audit_entries(after=after, limit=_PAGE, since=since, actor=actor)
        found += page
        if len(page) < _PAGE:
            break
        after = page[-1].seq
    return found if limit is None else found[-limit:]


SinceOption = Annotated[str | None, typer.Option(help="Entries at or after: ISO 8601 or 30m, 2h, 7d.")]
ActorOption = Annotated[str | None, typer.Option(help="Only this console user or OS user.")]


@audit_app.command("list")
def audit_list(
    config: ConfigOption = None,
    since: SinceOption = None,
    actor: ActorOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, the newest.")] = 200,
    json_output: JsonOption = False,
) -> None:
    """List audit entries, oldest first."""
    start = parse_time(since)
    records = with_inbox(
        config, lambda _s, inbox: _all(inbox, start.timestamp() if start else None, actor, limit)
    )
    if json_output:
        emit([r.as_dict() | {"at": _when(r.at)} for r in records])
        return
    table = Table(title=f"{len(records)} audit entries", title_justify="left")
    for column in ("#", "at (UTC)", "actor", "source", "action", "target", "outcome"):
        table.add_column(column, no_wrap=column in ("#", "at (UTC)"))
    for r in records:
        table.add_row(str(r.seq), _when(r.at), cell(r.actor), cell(r.source), cell(r.action), cell(r.target),
                      cell(r.outcome))
    stdout_console().print(table)


@audit_app.command("verify")
def audit_verify(config: ConfigOption = None) -> None:
    """Check the hash chain; exit 1 naming the first entry that was edited, inserted or deleted."""

    async def run(_settings: Settings, inbox: Inbox) -> ChainReport:
        return await verify(inbox)

    report = with_inbox(config, run)
    if report.broken is not None:
        err.print(f"The audit log does not hold at entry {report.broken.seq}: {report.broken.reason}.", markup=False)
        raise typer.Exit(1)
    typer.echo(f"The audit log holds: {report.checked} entries, each hash follows from the one before.")


@audit_app.command("export")
def audit_export(
    config: ConfigOption = None,
    since: SinceOption = None,
    actor: ActorOption = None,
    output_format: Annotated[
        Literal["jsonl"], typer.Option("--format", help="jsonl: one JSON object a line.")
    ] = "jsonl",
) -> None:
    """Write the audit log to stdout for a SIEM, one JSON object a line."""
    start = parse_time(since)
    records = with_inbox(
        config, lambda _s, inbox: _all(inbox, start.timestamp() if start else None, actor, None)
    )
    out = sys.stdout.buffer
    for r in records:
        out.write(orjson.dumps(r.as_dict() | {"at": _when(r.at)}) + b"\n")
    out.flush()
