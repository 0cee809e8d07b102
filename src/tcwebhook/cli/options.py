"""What every command shares: the ``--config`` option and the start-up error guard (exit 3)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from tcwebhook.errors import StartupError

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (default: ./tcwebhook.toml if present)."),
]


def startup_guard(func: Callable[[], T]) -> T:
    """Turn a StartupError into its one sentence on stderr and exit code 3."""
    try:
        return func()
    except StartupError as exc:
        print(f"tcwebhook: {exc}", file=sys.stderr)
        raise typer.Exit(StartupError.exit_code) from None
