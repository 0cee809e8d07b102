"""``tcwebhook contract drift``: what Tradecloud sent that the models did not know.

Tradecloud adds fields, enum values and event names without notice (it promises only backward
compatibility); each is accepted and kept, and recorded as the event is stored. This report lists
them with how many events carried each and the first and last of those events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from tcwebhook.cli.inbox import JsonOption, with_inbox
from tcwebhook.cli.options import ConfigOption
from tcwebhook.cli.output import emit, iso, stdout_console, when
from tcwebhook.config import parse_duration
from tcwebhook.inbox.base import DriftRecord
from tcwebhook.terminal import cell

contract_app = typer.Typer(
    rich_markup_mode="markdown",
    help="What Tradecloud sent that this version's contract models did not know.",
    no_args_is_help=True,
)

_WHAT = {
    "field": "unknown field",
    "enum_value": "unknown enum value",
    "event_name": "unknown event name",
    "event_key": "unknown event object",
    "number_as_text": "number sent as text",
}


def register(app: typer.Typer) -> None:
    app.add_typer(contract_app, name="contract")


def _since(value: str) -> float:
    try:
        return parse_duration(value.lower())
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a duration such as 7d, 12h or 3600") from exc


def _record_json(r: DriftRecord) -> dict[str, Any]:
    return {
        "what": r.what,
        "detail": r.detail,
        "count": r.count,
        "first_event_id": r.first_event_id,
        "last_event_id": r.last_event_id,
        "first_seen": iso(r.first_seen),
        "last_seen": iso(r.last_seen),
    }


@contract_app.command("drift")
def drift(
    since: Annotated[
        str, typer.Option("--since", help="Only what was last seen this recently (7d, 12h, seconds).")
    ] = "7d",
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Unknown fields, enum values, event names and event objects seen, most recent first."""
    cutoff = datetime.now(UTC) - timedelta(seconds=_since(since))
    records = with_inbox(config, lambda _s, inbox: inbox.contract_drift(cutoff))
    if json_output:
        emit([_record_json(r) for r in records])
        return
    out = stdout_console()
    if not records:
        out.print(f"Nothing unknown seen since {when(cutoff)} UTC.")
        return
    table = Table(title=f"{len(records)} unknown things seen since {when(cutoff)} UTC", title_justify="left")
    for column in ("what", "field path / value / name", "events", "first seen (UTC)", "last seen (UTC)",
                   "first event", "last event"):
        table.add_column(column)
    for r in records:
        table.add_row(
            _WHAT.get(r.what, r.what),
            cell(r.detail),  # chosen by the sender: shown as plain text
            str(r.count),
            when(r.first_seen),
            when(r.last_seen),
            cell(r.first_event_id),
            cell(r.last_event_id),
        )
    out.print(table)
