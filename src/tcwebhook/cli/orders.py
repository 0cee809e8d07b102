"""``tcwebhook orders``, ``tcwebhook shipments`` and ``tcwebhook render``: the order book, and what
a sink would deliver for a stored event."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from tcwebhook.cli.inbox import JsonOption, LimitOption, with_inbox
from tcwebhook.cli.options import ConfigOption
from tcwebhook.cli.output import err, stdout_console
from tcwebhook.config import Settings
from tcwebhook.errors import DeliveryError, EventNotFound, StartupError
from tcwebhook.formats import Output
from tcwebhook.formats.rows import order_rows, shipment_rows
from tcwebhook.formats.typed import json_bytes
from tcwebhook.inbox.base import Inbox
from tcwebhook.orderbook.book import BookEntry
from tcwebhook.orderbook.sql import BookSummary
from tcwebhook.orderbook.store import BookStore
from tcwebhook.terminal import cell, markup_safe

orders_app = typer.Typer(help="The current state of every order, as the events have told it.", no_args_is_help=True)
shipments_app = typer.Typer(help="The current state of every shipment.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(orders_app, name="orders")
    app.add_typer(shipments_app, name="shipments")
    app.command("render")(render)


def _book(inbox: Inbox) -> BookStore:
    if not isinstance(inbox, BookStore):
        raise StartupError("This store keeps no order book; upgrade its schema with a current tcwebhook.")
    return inbox


def _print_json(data: Any) -> None:
    sys.stdout.write(json_bytes(data).decode())


def _summaries_table(rows: Sequence[BookSummary]) -> Table:
    table = Table(title=f"{len(rows)} order(s), most recently changed first", title_justify="left")
    for name in ("order id", "purchase order", "status", "last updated", "lines", "events"):
        table.add_column(name, no_wrap=name in ("order id", "last updated"))
    for r in rows:
        lines = str(r.line_count) + (f" of {r.fetched_line_count}" if r.fetched_line_count is not None else "")
        table.add_row(
            cell(r.object_id), cell(r.number or ""), cell(r.status or ""), cell(r.last_updated_at or ""),
            lines, str(r.events),
        )
    return table


@orders_app.command("list")
def list_orders(
    config: ConfigOption = None,
    status: Annotated[
        str | None, typer.Option(help="The order's process status: Issued, InProgress, Confirmed, Rejected, …")
    ] = None,
    number: Annotated[str | None, typer.Option(help="Purchase order number or order id.")] = None,
    limit: LimitOption = 100,
    json_output: JsonOption = False,
) -> None:
    """List orders of the book, most recently changed first."""

    async def action(_s: Settings, inbox: Inbox) -> Sequence[BookSummary]:
        return await _book(inbox).book_summaries(status=status, number=number, limit=limit)

    rows = with_inbox(config, action)
    if json_output:
        _print_json([r.as_data() for r in rows])
    else:
        stdout_console().print(_summaries_table(rows))


def _entry(config: Any, key: str, what: str) -> BookEntry:
    async def action(_s: Settings, inbox: Inbox) -> BookEntry | None:
        return await _book(inbox).book_entry(key)

    entry = with_inbox(config, action)
    if entry is None:
        err.print(f"[red]not found:[/red] no {what} {markup_safe(key.split(':', 1)[1])} in the order book")
        raise typer.Exit(1)
    return entry


def _show_rows(entry: BookEntry) -> Table:
    data = entry.data
    columns: tuple[str, ...]
    if entry.kind == "order":
        rows = list(order_rows(data, event_name="", event_id=""))
        columns = ("line_position", "item_number", "line_process_status", "schedule_position", "delivery_date",
                   "quantity", "unit", "net_price", "currency")
    else:
        rows = list(shipment_rows(data, event_name="", event_id=""))
        columns = ("load_carrier", "purchase_order_number", "line_position", "schedule_position", "item_number",
                   "quantity", "unit")
    table = Table(title="lines" if entry.kind == "order" else "shipment lines", title_justify="left")
    for name in columns:
        table.add_column(name.replace("_", " "))
    from tcwebhook.formats.csvfile import cell as text_of

    for row in rows:
        table.add_row(*(cell(text_of(row.get(c))) for c in columns))
    return table


def _show(entry: BookEntry, json_output: bool) -> None:
    if json_output:
        _print_json(entry.as_data())
        return
    out = stdout_console()
    noun = "Order" if entry.kind == "order" else "Shipment"
    out.print(f"[bold]{noun}[/bold] {markup_safe(entry.object_id)}  {markup_safe(entry.number or '')}")
    out.print(f"status: {markup_safe(entry.status or '-')}   last updated: {markup_safe(entry.last_updated_at or '-')}")
    if entry.kind == "order":
        fetched = "" if entry.fetched_line_count is None else f" (a full fetch returned {entry.fetched_line_count})"
        out.print(f"lines in the book: {entry.line_count}{fetched}")
    out.print(_show_rows(entry))
    timeline = Table(title="events that built it", title_justify="left")
    for name in ("seq", "event id", "event", "last updated", "source"):
        timeline.add_column(name)
    for e in entry.events:
        timeline.add_row(str(e.seq), cell(e.event_id), cell(e.event_name), cell(e.last_updated_at or ""), e.source)
    out.print(timeline)


@orders_app.command("show")
def show_order(
    order_id: Annotated[str, typer.Argument(help="The Tradecloud order id.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show an order's current state and the events that built it."""
    _show(_entry(config, f"order:{order_id}", "order"), json_output)


@shipments_app.command("show")
def show_shipment(
    shipment_id: Annotated[str, typer.Argument(help="The Tradecloud shipment id.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a shipment's current state and the events that built it."""
    _show(_entry(config, f"shipment:{shipment_id}", "shipment"), json_output)


def render(
    event_id: Annotated[str, typer.Argument(help="The id of a stored event.")],
    sink: Annotated[str, typer.Option("--sink", help="The [[sinks]] name whose output to show.")],
    config: ConfigOption = None,
) -> None:
    """Print what a sink would deliver for a stored event (develop a template against real events).

    With payload = "order" it shows the book's current order or shipment.
    """

    async def action(settings: Settings, inbox: Inbox) -> bytes:
        cfg = next((c for c in settings.sinks if c.name == sink), None)
        if cfg is None:
            names = ", ".join(c.name for c in settings.sinks) or "none configured"
            raise StartupError(f"No sink named {sink!r} in the configuration (sinks: {names}).")
        output = Output.from_settings(cfg)
        event = await inbox.get_event(event_id)
        entry = None
        if output.needs_book and event.key is not None:
            entry = await _book(inbox).book_entry(event.key)
        return output.render(event, entry).body

    try:
        body = with_inbox(config, action)
    except (DeliveryError, EventNotFound) as exc:
        err.print(f"[red]cannot render:[/red] {markup_safe(exc)}")
        raise typer.Exit(1) from None
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()
