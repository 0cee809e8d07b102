"""``check-tls``: an SSL-Labs-style check of a webhook URL as Tradecloud will see it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tcwebhook.errors import StartupError
from tcwebhook.simulator.credentials import Credentials
from tcwebhook.simulator.tlscheck import Status, TlsReport, check_tls
from tcwebhook.terminal import cell

_STYLES = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIP: "dim"}


def _table(report: TlsReport) -> Table:
    table = Table(title=cell(f"check-tls {report.url}"), header_style="bold")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        style = _STYLES[check.status]
        # Details quote the server's certificate and answers: plain text only.
        table.add_row(check.name, f"[{style}]{check.status.value}[/{style}]", cell(check.detail))
    return table


def check_tls_command(
    url: Annotated[str, typer.Argument(help="The webhook URL (https:// only).")],
    ca_bundle: Annotated[
        Path | None, typer.Option(help="Trust only these CA certificates (PEM) instead of the system roots.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="Bearer token: also send an authenticated test event.", envvar="TCWEBHOOK_SEND_TOKEN"),
    ] = None,
    basic: Annotated[
        str | None,
        typer.Option(help="Basic USER:PASS: also send an authenticated test event.", envvar="TCWEBHOOK_SEND_BASIC"),
    ] = None,
    event: Annotated[
        str | None, typer.Option(help="Event name of the test event (default: by the URL's path).")
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds per connection.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check protocols, ciphers, certificate and (optionally) auth; exit 1 on any FAIL."""
    try:
        credentials = Credentials.parse(token=token, basic=basic)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        report = check_tls(url, ca_bundle=ca_bundle, credentials=credentials, timeout=timeout, event_name=event)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    except KeyError:
        raise typer.BadParameter(f"{event!r} is not a documented event name") from None
    except StartupError as exc:
        print(f"tcwebhook: {exc}", file=sys.stderr)
        raise typer.Exit(StartupError.exit_code) from None
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        console = Console(highlight=False, soft_wrap=False)
        console.print(_table(report))
        failed = sum(c.status is Status.FAIL for c in report.checks)
        warned = sum(c.status is Status.WARN for c in report.checks)
        verdict = "[green]OK[/green]" if report.ok else f"[bold red]{failed} check(s) failed[/bold red]"
        console.print(f"{verdict}" + (f", {warned} warning(s)" if warned else ""))
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``check-tls`` to ``app``."""
    app.command(
        "check-tls",
        help="Check a webhook URL's TLS setup the way Tradecloud sees it (protocols, ciphers, certificate).",
    )(check_tls_command)
