"""The ``tcwebhook`` command line: one Typer app, each command group in a module of its own."""

from __future__ import annotations

import sys

import typer

from tcwebhook.cli import (
    certificate,
    checktls,
    connect,
    console,
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
)

_GROUPS = (
    server, events, orders, quarantine, worker, send, checktls, console, db, certificate, reconcile, connect, health,
)
for module in _GROUPS:
    module.register(app)


def main() -> None:
    if sys.argv[1:2] in (["serve"], ["dev"]):
        from tcwebhook.transport.tls import restart_with_openssl_config

        # The server's key-exchange groups need OpenSSL configured before ssl is imported.
        restart_with_openssl_config()
    app()
