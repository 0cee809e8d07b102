"""``tcwebhook events``: list, show and replay the events in the inbox."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from tcwebhook.audit import cli_entry
from tcwebhook.cli.inbox import JsonOption, LimitOption, parse_time, record, with_inbox
from tcwebhook.cli.options import ConfigOption
from tcwebhook.cli.output import (
    body_json,
    chunks,
    emit,
    err,
    iso,
    pretty,
    progress_bar,
    status_markup,
    stdout_console,
    when,
)
from tcwebhook.config import Settings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import EventNotFound
from tcwebhook.inbox.base import Attempt, Delivery, DeliveryStatus, EventFilter, EventStatus, Inbox, StoredEvent
from tcwebhook.inbox.ids import resolve_event_id
from tcwebhook.terminal import cell, markup_safe

events_app = typer.Typer(
    rich_markup_mode="markdown",
    help="Inspect, and replay, the events in the inbox.",
    no_args_is_help=True,
)

BATCH = 200
RECONCILED = "reconciled"  # not a delivery status: the events reconciliation stored


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")


def _number(event: StoredEvent) -> str:
    """The number people look for: a shipment's own number first (its PO is one of several)."""
    if event.shipment_number or event.shipment_id:
        return event.shipment_number or event.shipment_id or ""
    return event.purchase_order_number or event.order_id or ""


def _event_json(event: StoredEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "seq": event.seq,
        "received_at": iso(event.received_at),
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
        "next_attempt_at": iso(d.next_attempt_at),
        "claim_owner": d.claim_owner,
        "claim_expires": iso(d.claim_expires),
        "last_error": d.last_error,
        "updated_at": iso(d.updated_at),
    }


def _attempt_json(a: Attempt) -> dict[str, Any]:
    return {
        "sink": a.sink,
        "number": a.number,
        "started_at": iso(a.started_at),
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
        # Ids, names and numbers come from request bodies: shown as text, never as markup.
        row: list[str | Text] = [
            when(e.received_at),
            cell(e.event_id),
            e.kind.value,
            cell(e.event_name),
            cell(_number(e)),
            status_markup(e.status),
        ]
        if errors is not None:
            row.append(cell(errors.get(e.event_id, "")))
        table.add_row(*row)
    return table


@events_app.command("list")
def list_events(
    config: ConfigOption = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="pending, delivered, dead, superseded, stored or unrecognised (kind unknown, held); "
            "reconciled: stored by reconcile."
        ),
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
    reconciled = status == RECONCILED
    if status is not None and not reconciled and status not in set(EventStatus):
        choices = ", ".join([*EventStatus, RECONCILED])
        raise typer.BadParameter(f"status must be one of {choices}", param_hint="--status")
    flt = EventFilter(
        status=None if reconciled else status,
        reconciled=True if reconciled else None,
        kind=kind,
        event_name=event,
        number=number,
        since=parse_time(since),
        until=parse_time(until),
        limit=limit,
    )
    events = with_inbox(config, lambda _s, inbox: inbox.list_events(flt))
    if json_output:
        emit([_event_json(e) for e in events])
    else:
        stdout_console().print(_events_table(events))


@events_app.command("dead")
def dead(config: ConfigOption = None, limit: LimitOption = 100, json_output: JsonOption = False) -> None:
    """List dead-lettered events with the error that killed them."""

    async def action(_settings: Settings, inbox: Inbox) -> list[tuple[StoredEvent, list[Delivery]]]:
        events = await inbox.list_events(EventFilter(status=EventStatus.DEAD, limit=limit))
        return [(e, [d for d in await inbox.deliveries(e.event_id) if d.status == "dead"]) for e in events]

    rows = with_inbox(config, action)
    if json_output:
        emit([
            {**_event_json(e), "errors": {d.sink: d.last_error for d in deliveries}} for e, deliveries in rows
        ])
        return
    errors = {e.event_id: "; ".join(f"{d.sink}: {d.last_error}" for d in ds) for e, ds in rows}
    out = stdout_console()
    out.print(_events_table([e for e, _ in rows], errors))
    if rows:
        out.print("Re-queue them with [bold]tcwebhook events replay --dead[/bold].")


@events_app.command("show")
def show(
    event_id: Annotated[str, typer.Argument(help="The event id, or its first 8 characters or more.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one event: its fields, body, deliveries, every attempt, and each files sink's file."""

    async def action(
        settings: Settings, inbox: Inbox
    ) -> tuple[StoredEvent, Sequence[Delivery], Sequence[Attempt], dict[str, str]]:
        event = await inbox.get_event(await resolve_event_id(inbox, event_id))
        deliveries = await inbox.deliveries(event.event_id)
        files = {k: v for k, v in _outbox_files(settings, event).items() if any(d.sink == k for d in deliveries)}
        return event, deliveries, await inbox.attempts(event.event_id), files

    event, deliveries, attempts, files = with_inbox(config, action)
    if json_output:
        emit({
            **_event_json(event),
            "headers": dict(event.headers),
            **body_json(event.body),
            "deliveries": [_delivery_json(d) for d in deliveries],
            "attempts": [_attempt_json(a) for a in attempts],
            "files": files,
        })
        return
    out = stdout_console()
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column()
    for name, value in _event_json(event).items():
        fields.add_row(name, status_markup(str(value)) if name == "status" else cell(value))
    out.print(fields)
    out.print()
    table = Table(title="deliveries", title_justify="left")
    for column in ("sink", "status", "attempts", "next attempt (UTC)", "last error"):
        table.add_column(column)
    for d in deliveries:
        next_at = when(d.next_attempt_at) if d.status == "pending" else ""
        if d.status == "pending" and d.next_attempt_at is None:
            next_at = "when the sender resends"
        recorded = sum(1 for a in attempts if a.sink == d.sink)
        # Fewer counted than recorded: a replay started the retry count afresh.
        count = f"{recorded} ({d.attempts} since the last replay)" if d.attempts < recorded else str(d.attempts)
        table.add_row(cell(d.sink), status_markup(d.status), count, next_at, cell(d.last_error))
    out.print(table)
    for sink_name, path in files.items():
        out.print(Text(f"file of sink {sink_name}: {path}" + ("" if Path(path).exists() else " (not there)")))
    if attempts:
        table = Table(title="attempts", title_justify="left")
        for column in ("time (UTC)", "sink", "#", "outcome", "duration", "error"):
            table.add_column(column)
        for a in attempts:
            table.add_row(
                when(a.started_at),
                cell(a.sink),
                str(a.number),
                cell(a.outcome),
                f"{a.duration * 1000:.1f} ms",
                cell(a.error),
            )
        out.print(table)
    if event.headers:
        out.print("\n[bold]headers[/bold]")
        for name, value in event.headers.items():
            out.print(f"  {markup_safe(name)}: {markup_safe(value)}")
    text, lexer = pretty(event.body, event.content_type)
    out.print(f"\n[bold]body[/bold] ({markup_safe(event.content_type)}, {len(event.body)} bytes)")
    out.print(Syntax(text, lexer, word_wrap=True, theme="ansi_dark"))


def _outbox_files(settings: Settings, event: StoredEvent) -> dict[str, str]:
    """The file each files sink writes this event to (whether or not it is there yet)."""
    from tcwebhook.config import FilesSinkSettings
    from tcwebhook.formats import Output
    from tcwebhook.sinks.files import event_file

    return {
        s.name: str(event_file(s.directory, event, Output.from_settings(s), subfolders=s.subfolders))
        for s in settings.sinks
        if isinstance(s, FilesSinkSettings)
    }


CONFIRM_ABOVE = 10  # a replay of more events than this asks first (unless --yes)


@events_app.command("replay")
def replay(
    event_ids: Annotated[
        list[str] | None, typer.Argument(help="Event ids to deliver again (or their first 8 characters or more).")
    ] = None,
    config: ConfigOption = None,
    dead_only: Annotated[bool, typer.Option("--dead", help="Every dead-lettered event (its dead deliveries).")] = False,
    unrecognised: Annotated[
        bool,
        typer.Option(
            "--unrecognised",
            help="Every event held as unrecognised (kind unknown): read again with this version's models, "
            "and its held deliveries re-queued.",
        ),
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Every event received since: ISO 8601 or 30m, 2h, 7d.")
    ] = None,
    sink: Annotated[
        str | None, typer.Option("--sink", help="Only this sink's deliveries (a [[sinks]] name).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be re-queued, per sink, and change nothing.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help=f"Do not ask before re-queueing more than {CONFIRM_ABOVE} events.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Deliver even a shipment state older than one already delivered.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Re-queue events for delivery (the running dispatcher picks them up at its next poll).

    Above 10 events it asks first (--yes skips the question); --dry-run only shows, per sink, what
    would be re-queued, what is skipped (already delivered to that sink, or being delivered), and
    which would be superseded by a newer state of the same order or shipment. An event of kind
    unknown is first read again with this version's models: one they know now is delivered as
    that kind; one still unknown is held again where no sink accepts it.
    """
    from tcwebhook.cli.replayplan import plan_replay

    ids = list(event_ids or [])
    if not ids and not dead_only and not unrecognised and since is None:
        raise typer.BadParameter("give event ids, --dead, --unrecognised or --since")
    if ids and (dead_only or unrecognised or since is not None):
        raise typer.BadParameter("give either event ids or --dead/--unrecognised/--since, not both")
    if dead_only and unrecognised:
        raise typer.BadParameter("give --dead or --unrecognised, not both")
    since_at = parse_time(since)
    reasons: dict[str, str] = {}  # why a given id or prefix names no single event

    async def action(settings: Settings, inbox: Inbox) -> dict[str, Any]:
        names = [s.name for s in settings.sinks]
        if sink is not None and sink not in names:
            raise typer.BadParameter(
                f"no sink {sink!r} in this configuration (sinks: {', '.join(names) or 'none'})", param_hint="--sink"
            )
        chosen: list[str] = []
        unresolved: list[str] = []  # ids and prefixes that name no event (or several)
        for given in ids:
            try:
                chosen.append(await resolve_event_id(inbox, given))
            except EventNotFound as exc:
                unresolved.append(given)
                reasons[given] = str(exc)
        if not ids:
            # With --sink, --dead means that sink's dead deliveries (the filter's status is then the sink's).
            wanted = DeliveryStatus.DEAD if dead_only else DeliveryStatus.UNRECOGNISED if unrecognised else None
            # With --sink the filter's status is that sink's delivery's, else the event's (same names).
            chosen_status: str | None = None if wanted is None else wanted.value
            flt = EventFilter(
                status=chosen_status,
                sink=sink if wanted is not None else None,
                since=since_at,
                limit=sys.maxsize,
            )
            chosen = list(await inbox.list_event_ids(flt))
        plan = await plan_replay(
            inbox, settings, chosen, sink=sink, only_dead=dead_only, force=force, only_unrecognised=unrecognised
        )
        if dry_run:
            return {"dry_run": True, "selected": len(chosen), **plan.as_json(), "missing": plan.missing + unresolved}
        if len(chosen) > CONFIRM_ABOVE and not yes:
            totals = plan.totals()
            where = f" for sink {sink}" if sink else ""
            question = (
                f"Re-queue {totals['requeue']} deliveries of {len(chosen)} events{where} "
                f"({totals['superseded']} of them superseded by a newer state)?"
            )
            if not typer.confirm(question, err=True):
                err.print("Nothing was re-queued.")
                raise typer.Exit(1)
        requeued = events = reclassified = 0
        missing: list[str] = []
        with progress_bar("Re-queueing", json_output) as progress:
            task = progress.add_task("replay", total=len(chosen))
            for batch in chunks(chosen, BATCH):
                result = await inbox.replay(
                    batch, only_dead=dead_only, force=force, sink=sink, only_unrecognised=unrecognised
                )
                requeued += result.requeued
                events += result.events
                reclassified += result.reclassified
                missing.extend(result.missing)
                progress.advance(task, len(batch))
        totals = plan.totals()
        await record(inbox, settings, cli_entry(
            "events.replay", ", ".join(chosen[:20]) + (f" and {len(chosen) - 20} more" if len(chosen) > 20 else ""),
            events=events, requeued=requeued, sink=sink, only_dead=dead_only, force=force,
            only_unrecognised=unrecognised, reclassified=reclassified,
        ))
        return {
            "selected": len(chosen),
            "events": events,
            "requeued": requeued,
            "reclassified": reclassified,
            "skipped_delivered": totals["delivered"],
            "skipped_in_flight": totals["in_flight"],
            "superseded": totals["superseded"],
            "missing": unresolved + missing,
            "sinks": plan.as_json()["sinks"],
        }

    summary = with_inbox(config, action)
    if json_output:
        emit(summary)
    elif summary.get("dry_run"):
        _print_plan(summary)
    else:
        stdout_console().print(
            f"Re-queued {summary['requeued']} deliveries of {summary['events']} event(s) "
            f"({summary['selected']} selected); skipped {summary['skipped_delivered']} already delivered to "
            f"that sink and {summary['skipped_in_flight']} being delivered; {summary['superseded']} will be "
            "superseded by a newer state."
            + (f" {summary['reclassified']} event(s) of kind unknown are now known."
               if summary["reclassified"] else ""),
            markup=False,
        )
    for event_id in summary["missing"]:
        err.print(f"[red]not found:[/red] {markup_safe(reasons.get(event_id, event_id))}")
    if summary["missing"]:
        raise typer.Exit(1)


def _print_plan(summary: dict[str, Any]) -> None:
    out = stdout_console()
    table = Table(title=f"dry run: {summary['selected']} event(s) selected, nothing changed", title_justify="left")
    for column in ("sink", "would re-queue", "skipped: delivered", "skipped: in flight", "superseded"):
        table.add_column(column, justify="left" if column == "sink" else "right")
    for name, p in summary["sinks"].items():
        table.add_row(cell(name), str(p["requeue"]), str(p["skipped_delivered"]), str(p["skipped_in_flight"]),
                      str(len(p["superseded"])))
    out.print(table)
    for name, p in summary["sinks"].items():
        for event_id in p["superseded"][:20]:
            out.print(f"superseded at {markup_safe(name)}: {markup_safe(event_id)}")
