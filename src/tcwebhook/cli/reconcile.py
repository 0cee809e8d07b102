"""``tcwebhook reconcile``: compare Tradecloud's current orders and shipments with the inbox.

Exit codes: 0 no gaps (or every gap repaired), 1 gaps remain or the run was cut short, 3 start-up.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from tcwebhook.cli.inbox import command_settings
from tcwebhook.cli.options import ConfigOption, startup_guard
from tcwebhook.config import parse_duration
from tcwebhook.errors import StartupError

if TYPE_CHECKING:
    from tcwebhook.reconcile.reconciler import Action, Report

err = Console(stderr=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command(help="Find changes Tradecloud never delivered (polling API) and resend or fetch them.")(reconcile)


def reconcile(
    config: ConfigOption = None,
    since: Annotated[
        str | None,
        typer.Option(help="Look back this far (30m, 24h, 7d) instead of from the stored high-water mark."),
    ] = None,
    orders: Annotated[bool, typer.Option("--orders", help="Orders only (default: orders and shipments).")] = False,
    shipments: Annotated[bool, typer.Option("--shipments", help="Shipments only.")] = False,
    resend: Annotated[bool, typer.Option("--resend", help="Ask Tradecloud to resend each gap's webhook.")] = False,
    fetch: Annotated[
        bool, typer.Option("--fetch", help="Store each gap's current object as a reconciled event.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")] = False,
) -> None:
    """Poll order-search/poll and shipment/poll, list the gaps, and optionally repair them."""
    if resend and fetch:
        raise typer.BadParameter("choose one of --resend and --fetch", param_hint="--resend/--fetch")
    settings = command_settings(config)
    seconds = None
    if since is not None:
        try:
            seconds = parse_duration(since)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--since") from None
    action: Action = "resend" if resend else "fetch" if fetch else "report"
    both = not orders and not shipments

    async def main() -> Report:
        from tcwebhook.inbox.factory import open_inbox
        from tcwebhook.reconcile.reconciler import Reconciler
        from tcwebhook.tradecloud_api.client import TradecloudClient

        if not settings.tradecloud.configured:
            raise StartupError(
                "reconcile needs the Tradecloud API: set [tradecloud] username and password of an integration user."
            )
        inbox = open_inbox(settings, hold_new=False)
        await inbox.open()
        try:
            async with TradecloudClient(settings.tradecloud) as client:
                return await Reconciler(settings, inbox, client).run(
                    action=action,
                    since=seconds,
                    orders=orders or both,
                    shipments=shipments or both,
                )
        finally:
            await inbox.close()

    report = startup_guard(lambda: asyncio.run(main()))
    if json_output:
        sys.stdout.write(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print(report)
    repaired = all(g.outcome in ("resent", "fetched", "already stored") for g in report.gaps)
    if not report.complete or (report.gaps and (action == "report" or not repaired)):
        raise typer.Exit(1)


def _print(report: Report) -> None:
    out = Console(highlight=False, soft_wrap=True)
    checked = ", ".join(f"{n} {noun}s" for noun, n in report.checked.items()) or "nothing"
    if not report.gaps:
        out.print(f"No gaps: checked {checked}.")
    else:
        table = Table(title=f"{len(report.gaps)} gap(s) in {checked}")
        for column in ("kind", "id", "number", "gap", "Tradecloud updated", "stored", "outcome"):
            table.add_column(column)
        for g in report.gaps:
            version = f" v{g.tradecloud_version}" if g.tradecloud_version is not None else ""
            stored = (g.stored_updated_at or "-") + (f" v{g.stored_version}" if g.stored_version is not None else "")
            table.add_row(
                g.noun,
                g.object_id,
                g.number or "",
                g.reason,
                f"{g.tradecloud_updated_at}{version}",
                stored,
                g.outcome or "-",
            )
        out.print(table)
    for error in report.errors:
        err.print(f"[red]incomplete:[/red] {error} (the next run starts again from the last high-water mark)")
