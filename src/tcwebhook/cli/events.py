"""Operator commands: ``events``, ``quarantine`` and ``worker``.

They open the same store as ``serve`` (same ``--config``) and work while it runs: reads use their
own connections, and a replay is picked up by the running dispatcher at its next poll. Tables and
progress bars are for people; ``--json`` prints plain JSON on stdout for scripts (progress and
log lines go to stderr). Exit codes: 0 done, 1 something was not found or failed, 3 start-up.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

from tcwebhook.cli.server import ConfigOption, startup_guard
from tcwebhook.config import LoggingSettings, Settings, load_settings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import ContractError, EventNotFound, StoreError
from tcwebhook.inbox.base import (
    Attempt,
    Delivery,
    EventFilter,
    EventStatus,
    Inbox,
    NewEvent,
    QuarantineEntry,
    StoredEvent,
)
from tcwebhook.inbox.factory import open_inbox
from tcwebhook.logs import configure_logging

T = TypeVar("T")

events_app = typer.Typer(help="Inspect, and replay, the events in the inbox.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Inspect and reprocess request bodies that were rejected.", no_args_is_help=True)

err = Console(stderr=True, highlight=False)

BATCH = 200
_STYLE = {"pending": "yellow", "delivered": "green", "dead": "bold red", "superseded": "dim", "stored": "cyan"}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many rows.")]


def register(app: typer.Typer) -> None:
    """Add ``events``, ``quarantine`` and ``worker`` to ``app``."""
    app.add_typer(events_app, name="events")
    app.add_typer(quarantine_app, name="quarantine")
    app.command(help="Deliver stored events to the sinks, without receiving (scale apart from serve).")(worker)


# -- plumbing ----------------------------------------------------------------------------------


class _Stderr:
    """Log lines go to whatever ``sys.stderr`` is when they are written."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _settings(config: Path | None) -> Settings:
    settings = startup_guard(lambda: load_settings(config))
    # Only warnings, and on stderr: stdout belongs to the tables and the JSON.
    quiet = LoggingSettings(level="warning", format=settings.logging.format)
    configure_logging(settings.model_copy(update={"logging": quiet}), stream=_Stderr())
    return settings


def _with_inbox(config: Path | None, action: Callable[[Settings, Inbox], Awaitable[T]]) -> T:
    settings = _settings(config)

    async def main() -> T:
        # Events stored from here (reprocess) go to the background loop even in sync mode.
        inbox = open_inbox(settings, hold_new=False)
        await inbox.open()
        try:
            return await action(settings, inbox)
        finally:
            await inbox.close()

    try:
        return startup_guard(lambda: asyncio.run(main()))
    except EventNotFound as exc:
        err.print(f"[red]not found:[/red] {exc}")
        raise typer.Exit(1) from None
    except StoreError as exc:
        err.print(f"[red]store error:[/red] {exc}")
        raise typer.Exit(1) from None


def parse_time(value: str | None) -> datetime | None:
    """ISO 8601 (a zone-less time is UTC) or a span back from now: ``90s``, ``30m``, ``2h``, ``7d``."""
    if value is None:
        return None
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = float(relative.group(1)), relative.group(2)
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither ISO 8601 nor a span like 30m, 2h, 7d") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _out() -> Console:
    # Piped into a file or a pager there is no terminal width: do not cut ids to fit 80 columns.
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200
    return console


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _number(event: StoredEvent) -> str:
    return event.purchase_order_number or event.shipment_number or event.order_id or event.shipment_id or ""


def _status(status: str) -> str:
    return f"[{_STYLE.get(status, 'white')}]{status}[/]"


def _emit(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _body_json(body: bytes) -> dict[str, str]:
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode("ascii")}


def _pretty(body: bytes, content_type: str) -> tuple[str, str]:
    """The body for people: (text, lexer). JSON and XML are indented; anything else as is."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(body)} bytes, not UTF-8>", "text"
    stripped = text.lstrip()
    if "json" in content_type or stripped.startswith(("{", "[")):
        try:
            return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode(), "json"
        except orjson.JSONDecodeError:
            return text, "text"
    if "xml" in content_type or stripped.startswith("<"):
        from defusedxml import minidom

        try:
            pretty = minidom.parseString(body).toprettyxml(indent="  ")
        except Exception:  # any parse failure: show it as received
            return text, "text"
        return "\n".join(line for line in pretty.splitlines() if line.strip()), "xml"
    return text, "text"


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _progress(description: str, quiet: bool) -> Progress:
    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
    )


# -- events ------------------------------------------------------------------------------------


def _event_json(event: StoredEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "seq": event.seq,
        "received_at": _iso(event.received_at),
        "kind": event.kind.value,
        "event_name": event.event_name,
        "status": event.status,
        "key": event.key,
        "order_id": event.order_id,
        "shipment_id": event.shipment_id,
        "purchase_order_number": event.purchase_order_number,
        "shipment_number": event.shipment_number,
        "message_id": event.message_id,
        "last_updated_at": event.last_updated_at,
        "dedupe_key": event.dedupe_key,
        "content_type": event.content_type,
        "size": len(event.body),
    }


def _delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "sink": d.sink,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": _iso(d.next_attempt_at),
        "claim_owner": d.claim_owner,
        "claim_expires": _iso(d.claim_expires),
        "last_error": d.last_error,
        "updated_at": _iso(d.updated_at),
    }


def _attempt_json(a: Attempt) -> dict[str, Any]:
    return {
        "sink": a.sink,
        "number": a.number,
        "started_at": _iso(a.started_at),
        "duration": round(a.duration, 6),
        "outcome": a.outcome,
        "error": a.error,
    }


def _events_table(events: Sequence[StoredEvent], errors: dict[str, str] | None = None) -> Table:
    table = Table(title=f"{len(events)} event(s), newest first", title_justify="left")
    table.add_column("received (UTC)", no_wrap=True)
    table.add_column("event id", no_wrap=True, min_width=36)
    table.add_column("kind")
    table.add_column("event")
    table.add_column("number")
    table.add_column("status")
    if errors is not None:
        table.add_column("last error")
    for e in events:
        row = [_when(e.received_at), e.event_id, e.kind.value, e.event_name, _number(e), _status(e.status)]
        if errors is not None:
            row.append(errors.get(e.event_id, ""))
        table.add_row(*row)
    return table


@events_app.command("list")
def list_events(
    config: ConfigOption = None,
    status: Annotated[
        str | None, typer.Option(help="pending, delivered, dead, superseded or stored.")
    ] = None,
    kind: Annotated[EventKind | None, typer.Option(help="Event kind.")] = None,
    event: Annotated[str | None, typer.Option("--event", help="Event name, glob allowed: 'Order*'.")] = None,
    number: Annotated[
        str | None, typer.Option(help="Order or shipment id, purchase order number or shipment number.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Received at or after: ISO 8601 or 30m, 2h, 7d.")] = None,
    until: Annotated[str | None, typer.Option(help="Received before: ISO 8601 or 30m, 2h, 7d.")] = None,
    limit: LimitOption = 100,
    json_output: JsonOption = False,
) -> None:
    """List events, newest first."""
    if status is not None and status not in set(EventStatus):
        raise typer.BadParameter(f"status must be one of {', '.join(EventStatus)}", param_hint="--status")
    flt = EventFilter(
        status=status,
        kind=kind,
        event_name=event,
        number=number,
        since=parse_time(since),
        until=parse_time(until),
        limit=limit,
    )
    events = _with_inbox(config, lambda _s, inbox: inbox.list_events(flt))
    if json_output:
        _emit([_event_json(e) for e in events])
    else:
        _out().print(_events_table(events))


@events_app.command("dead")
def dead(config: ConfigOption = None, limit: LimitOption = 100, json_output: JsonOption = False) -> None:
    """List dead-lettered events with the error that killed them."""

    async def action(_settings: Settings, inbox: Inbox) -> list[tuple[StoredEvent, list[Delivery]]]:
        events = await inbox.list_events(EventFilter(status=EventStatus.DEAD, limit=limit))
        return [(e, [d for d in await inbox.deliveries(e.event_id) if d.status == "dead"]) for e in events]

    rows = _with_inbox(config, action)
    if json_output:
        _emit([
            {**_event_json(e), "errors": {d.sink: d.last_error for d in deliveries}} for e, deliveries in rows
        ])
        return
    errors = {e.event_id: "; ".join(f"{d.sink}: {d.last_error}" for d in ds) for e, ds in rows}
    out = _out()
    out.print(_events_table([e for e, _ in rows], errors))
    if rows:
        out.print("Re-queue them with [bold]tcwebhook events replay --dead[/bold].")


@events_app.command("show")
def show(
    event_id: Annotated[str, typer.Argument(help="The event id.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one event: its fields, body, deliveries and every attempt."""

    async def action(_settings: Settings, inbox: Inbox) -> tuple[StoredEvent, Sequence[Delivery], Sequence[Attempt]]:
        return (
            await inbox.get_event(event_id),
            await inbox.deliveries(event_id),
            await inbox.attempts(event_id),
        )

    event, deliveries, attempts = _with_inbox(config, action)
    if json_output:
        _emit({
            **_event_json(event),
            "headers": dict(event.headers),
            **_body_json(event.body),
            "deliveries": [_delivery_json(d) for d in deliveries],
            "attempts": [_attempt_json(a) for a in attempts],
        })
        return
    out = _out()
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column()
    for name, value in _event_json(event).items():
        fields.add_row(name, _status(str(value)) if name == "status" else str("" if value is None else value))
    out.print(fields)
    out.print()
    table = Table(title="deliveries", title_justify="left")
    for column in ("sink", "status", "attempts", "next attempt (UTC)", "last error"):
        table.add_column(column)
    for d in deliveries:
        next_at = _when(d.next_attempt_at) if d.status == "pending" else ""
        if d.status == "pending" and d.next_attempt_at is None:
            next_at = "when the sender resends"
        table.add_row(d.sink, _status(d.status), str(d.attempts), next_at, d.last_error or "")
    out.print(table)
    if attempts:
        table = Table(title="attempts", title_justify="left")
        for column in ("time (UTC)", "sink", "#", "outcome", "duration", "error"):
            table.add_column(column)
        for a in attempts:
            table.add_row(
                _when(a.started_at), a.sink, str(a.number), a.outcome, f"{a.duration * 1000:.1f} ms", a.error or ""
            )
        out.print(table)
    if event.headers:
        out.print("\n[bold]headers[/bold]")
        for name, value in event.headers.items():
            out.print(f"  {name}: {value}")
    text, lexer = _pretty(event.body, event.content_type)
    out.print(f"\n[bold]body[/bold] ({event.content_type}, {len(event.body)} bytes)")
    out.print(Syntax(text, lexer, word_wrap=True, theme="ansi_dark"))


@events_app.command("replay")
def replay(
    event_ids: Annotated[list[str] | None, typer.Argument(help="Event ids to deliver again.")] = None,
    config: ConfigOption = None,
    dead_only: Annotated[bool, typer.Option("--dead", help="Every dead-lettered event (its dead deliveries).")] = False,
    since: Annotated[
        str | None, typer.Option(help="Every event received since: ISO 8601 or 30m, 2h, 7d.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Deliver even a shipment state older than one already delivered.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Re-queue events for delivery (the running dispatcher picks them up at its next poll)."""
    ids = list(event_ids or [])
    if not ids and not dead_only and since is None:
        raise typer.BadParameter("give event ids, --dead or --since")
    if ids and (dead_only or since is not None):
        raise typer.BadParameter("give either event ids or --dead/--since, not both")
    since_at = parse_time(since)

    async def action(_settings: Settings, inbox: Inbox) -> dict[str, Any]:
        chosen = ids
        if not chosen:
            flt = EventFilter(status=EventStatus.DEAD if dead_only else None, since=since_at, limit=sys.maxsize)
            chosen = list(await inbox.list_event_ids(flt))
        requeued = events = 0
        missing: list[str] = []
        with _progress("Re-queueing", json_output) as progress:
            task = progress.add_task("replay", total=len(chosen))
            for batch in _chunks(chosen, BATCH):
                result = await inbox.replay(batch, only_dead=dead_only, force=force)
                requeued += result.requeued
                events += result.events
                missing.extend(result.missing)
                progress.advance(task, len(batch))
        return {"selected": len(chosen), "events": events, "requeued": requeued, "missing": missing}

    summary = _with_inbox(config, action)
    if json_output:
        _emit(summary)
    else:
        _out().print(
            f"Re-queued {summary['requeued']} deliveries of {summary['events']} event(s) "
            f"({summary['selected']} selected)."
        )
        for event_id in summary["missing"]:
            err.print(f"[red]not found:[/red] {event_id}")
    if summary["missing"]:
        raise typer.Exit(1)


# -- quarantine --------------------------------------------------------------------------------


def _quarantine_json(q: QuarantineEntry) -> dict[str, Any]:
    return {
        "id": q.id,
        "received_at": _iso(q.received_at),
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
    entries = _with_inbox(config, lambda _s, inbox: inbox.list_quarantined(limit))
    if json_output:
        _emit([_quarantine_json(q) for q in entries])
        return
    table = Table(title=f"{len(entries)} quarantined bodies, newest first", title_justify="left")
    table.add_column("received (UTC)", no_wrap=True)
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("route", "status", "reason"):
        table.add_column(column)
    table.add_column("reprocessed as", no_wrap=True)
    for q in entries:
        table.add_row(
            _when(q.received_at), q.id, q.route, str(q.status_code), q.reason, q.reprocessed_event_id or ""
        )
    _out().print(table)


@quarantine_app.command("show")
def quarantine_show(
    quarantine_id: Annotated[str, typer.Argument(help="The quarantine id.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one rejected body with its reason and headers."""
    entry = _with_inbox(config, lambda _s, inbox: inbox.get_quarantined(quarantine_id))
    if json_output:
        _emit({**_quarantine_json(entry), "headers": dict(entry.headers), **_body_json(entry.body)})
        return
    out = _out()
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column()
    for name, value in _quarantine_json(entry).items():
        fields.add_row(name, "" if value is None else str(value))
    out.print(fields)
    if entry.headers:
        out.print("\n[bold]headers[/bold]")
        for name, value in entry.headers.items():
            out.print(f"  {name}: {value}")
    text, lexer = _pretty(entry.body, entry.content_type)
    out.print(f"\n[bold]body[/bold] ({entry.content_type or 'no content type'}, {len(entry.body)} bytes)")
    out.print(Syntax(text, lexer, word_wrap=True, theme="ansi_dark"))


def _reparsed(entry: QuarantineEntry) -> NewEvent:
    """The entry as an event, if the contract accepts it now; ContractError if it still does not."""
    from tcwebhook.contract.models import Route
    from tcwebhook.contract.parse import parse_webhook

    parsed = parse_webhook(cast(Route, entry.route), entry.body, entry.content_type or None)
    return NewEvent.from_parsed(
        parsed, content_type=entry.content_type or "application/json", body=entry.body, headers=entry.headers
    )


@quarantine_app.command("reprocess")
def quarantine_reprocess(
    quarantine_ids: Annotated[list[str], typer.Argument(help="Quarantine ids.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Parse rejected bodies again (after an upgrade or a fix) and store those that pass as events."""

    async def action(_settings: Settings, inbox: Inbox) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        with _progress("Reprocessing", json_output or len(quarantine_ids) < 2) as progress:
            task = progress.add_task("reprocess", total=len(quarantine_ids))
            for qid in quarantine_ids:
                row: dict[str, Any] = {"id": qid, "event_id": None, "duplicate": False, "error": None}
                try:
                    entry = await inbox.get_quarantined(qid)
                    stored = await inbox.reprocess_quarantined(qid, _reparsed(entry))
                    row.update(event_id=stored.event_id, duplicate=stored.duplicate)
                except (ContractError, EventNotFound) as exc:
                    row["error"] = str(exc)
                results.append(row)
                progress.advance(task)
        return results

    results = _with_inbox(config, action)
    if json_output:
        _emit(results)
    else:
        out = _out()
        for row in results:
            if row["error"]:
                err.print(f"[red]{row['id']}[/red]: {row['error']}")
            else:
                note = " (already stored: duplicate)" if row["duplicate"] else ""
                out.print(f"{row['id']} -> event [bold]{row['event_id']}[/bold]{note}")
    if any(row["error"] for row in results):
        raise typer.Exit(1)


# -- worker ------------------------------------------------------------------------------------


def worker(config: ConfigOption = None) -> None:
    from tcwebhook.dispatch.worker import run_worker

    settings = startup_guard(lambda: load_settings(config))
    configure_logging(settings)
    startup_guard(lambda: asyncio.run(run_worker(settings)))
