"""``tcwebhook console``: the operator console alone, and ``console hash-password``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tcwebhook.cli.options import ConfigOption, startup_guard
from tcwebhook.config import load_settings
from tcwebhook.logs import configure_logging

console_app = typer.Typer(
    rich_markup_mode="markdown",
    help="The operator console in the browser (also served by `serve` when [console] enabled = true).",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(console_app, name="console")


@console_app.callback()
def console(
    ctx: typer.Context,
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Override [console] host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override [console] port.")] = None,
) -> None:
    """Serve the console alone over HTTPS, on the configured store (for a host that only operates)."""
    if ctx.invoked_subcommand is not None:
        return
    from tcwebhook.service import serve_console

    settings = startup_guard(lambda: load_settings(config, **{"console.host": host, "console.port": port}))
    configure_logging(settings)
    startup_guard(lambda: serve_console(settings))


@console_app.command("hash-password")
def hash_password_command() -> None:
    """Print the argon2 hash of a password for [[console.users]] password_hash (read from stdin if piped)."""
    from tcwebhook.console.users import hash_password

    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("tcwebhook: the password cannot be empty.", file=sys.stderr)
        raise typer.Exit(1)
    typer.echo(hash_password(password))
