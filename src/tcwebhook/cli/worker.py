"""``tcwebhook worker``: deliver stored events to the sinks without receiving."""

from __future__ import annotations

import asyncio

import typer

from tcwebhook.cli.options import ConfigOption, startup_guard
from tcwebhook.config import load_settings
from tcwebhook.logs import configure_logging


def register(app: typer.Typer) -> None:
    app.command(help="Deliver stored events to the sinks, without receiving (scale apart from serve).")(worker)


def worker(config: ConfigOption = None) -> None:
    from tcwebhook.service import run_worker

    settings = startup_guard(lambda: load_settings(config))
    configure_logging(settings)
    startup_guard(lambda: asyncio.run(run_worker(settings)))
