"""The ``tcwebhook`` command line: one Typer app, each command group in a module of its own.

Exit codes: 0 done, 1 an operation failed (or found nothing), 2 wrong usage, 3 a configuration
or start-up problem.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tcwebhook import __version__
from tcwebhook.cli import (
    audit,
    certificate,
    checktls,
    connect,
    console,
    contract,
    db,
    events,
    health,
    orders,
    quarantine,
    reconcile,
    send,
    server,
    worker,
)

app = typer.Typer(
    name="tcwebhook",
    help="HTTPS receiver for Tradecloud order and shipment webhooks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts name config sections such as [server]: Rich markup would take them for styles.
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tcwebhook {__version__}")
        raise typer.Exit


@app.callback()
def _common(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    from tcwebhook.config import environment_warnings

    # Before any command: a mistyped variable would otherwise be silently ignored.
    for warning in environment_warnings():
        print(f"tcwebhook: warning: {warning}.", file=sys.stderr)


_GROUPS = (
    audit,
    server, events, orders, quarantine, worker, send, checktls, console, db, certificate, reconcile, connect, health,
    contract,
)
for module in _GROUPS:
    module.register(app)


def main() -> None:
    if sys.argv[1:2] in (["serve"], ["dev"]):
        from tcwebhook.transport.tls import restart_with_openssl_config

        # The server's key-exchange groups need OpenSSL configured before ssl is imported.
        restart_with_openssl_config()
    app()
