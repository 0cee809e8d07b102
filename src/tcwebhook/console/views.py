"""The console's pages and actions (sessions, CSRF and roles: ``console.app``; shared state: ``console.state``)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tcwebhook.audit import verify
from tcwebhook.console import render
from tcwebhook.console.notes import note_query
from tcwebhook.console.state import Console
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import ContractError, DeliveryError, EventNotFound, StoreError
from tcwebhook.formats.csvfile import cell as text_of
from tcwebhook.formats.rows import order_rows, shipment_rows
from tcwebhook.formats.typed import json_bytes
from tcwebhook.inbox.base import (
    Attempt,
    DeliveryStatus,
    EventFilter,
    EventStatus,
    StoredEvent,
)
from tcwebhook.inbox.ids import resolve_event_id
from tcwebhook.orderbook.book import BookEntry
from tcwebhook.orderbook.sql import BookSummary
from tcwebhook.orderbook.store import BookStore
from tcwebhook.receiver.reparse import reparsed

AUDIT_PAGE = 200
log = structlog.get_logger(__name__)

PAGE_SIZE = 50
CHART_HOURS = 6
CHART_BUCKET = 60  # seconds: events per minute
REPLAY_BATCH = 200
COUNT_CAP = 10_000  # a listing counts its matches up to here ("10,000+" past it): one index range
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.ASCII)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
STATUSES = [s.value for s in EventStatus]
DELIVERY_STATUSES = [s.value for s in DeliveryStatus]
KINDS = [k.value for k in EventKind]


def parse_moment(value: str, now: datetime) -> datetime | None:
    """A span back from now (``30m``, ``2h``, ``7d``) or an ISO 8601 time (zone-less is UTC)."""
    value = value.strip()
    if not value:
        return None
    try:
        span = _SPAN.match(value)
        if span:
            return now - timedelta(**{_UNITS[span.group(2)]: float(span.group(1))})
        parsed = datetime.fromisoformat(value)
    except (ValueError, OverflowError):  # not a moment, or one before year 1 (99999999w)
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_CURSOR = re.compile(r"[0-9]{1,18}")  # ASCII: str.isdigit() also takes '²', which int() refuses


def page_cursor(value: str) -> int | None:
    """The ``before=`` cursor of a listing (a sequence number); ValueError when it is none."""
    if not value:
        return None
    if not _CURSOR.fullmatch(value):
        raise ValueError(f"before: {value[:40]!r} is not a page cursor")
    return int(value)


def number_of(event: StoredEvent) -> str:
    """The number people look for: a shipment's own number first (its PO is one of several)."""
    if event.shipment_number or event.shipment_id:
        return event.shipment_number or event.shipment_id or ""
    return event.purchase_order_number or event.order_id or ""


async def _certificate(console: Console, now: datetime) -> dict[str, Any]:
    expiry = await asyncio.to_thread(console.hooks.certificate_expiry)
    if expiry is None:
        return {"known": False}
    return {"known": True, "not_after": expiry, "days_left": (expiry - now) // timedelta(days=1)}


async def _store_status(console: Console) -> str | None:
    """None when the store answers, else why not."""
    try:
        async with asyncio.timeout(2.0):
            await console.inbox.ping()
    except TimeoutError:
        return "no answer within 2 s"
    except StoreError as exc:
        return str(exc)
    return None


# -- pages -------------------------------------------------------------------------------------


async def overview(console: Console, request: Request) -> Response:
    now = datetime.now(UTC)
    since = render.hours_ago(CHART_HOURS, now)
    store_error = await _store_status(console)
    counts = await console.inbox.count_by_status()
    sinks = await console.inbox.sink_health(console.sink_names)
    buckets = await console.inbox.arrivals(since, CHART_BUCKET)
    chart = render.arrivals_chart(buckets, since=since, bucket_seconds=CHART_BUCKET, now=now)
    return console.page(
        request,
        "overview.html",
        counts=counts,
        statuses=[*STATUSES, "quarantined"],
        sinks=sinks,
        chart=chart,
        chart_hours=CHART_HOURS,
        certificate=await _certificate(console, now),
        store_error=store_error,
        now=now,
    )


def _filter_from(request: Request, now: datetime) -> tuple[EventFilter, dict[str, str], list[str]]:
    """The listing filter of the query string, the values to show again, and input problems."""
    q = request.query_params
    shown = {name: q.get(name, "").strip() for name in ("status", "kind", "event", "sink", "since", "until", "q")}
    problems: list[str] = []
    kind = None
    if shown["kind"]:
        if shown["kind"] in KINDS:
            kind = EventKind(shown["kind"])
        else:
            problems.append(f"unknown kind {shown['kind']!r}")
    allowed = DELIVERY_STATUSES if shown["sink"] else STATUSES
    status = shown["status"] or None
    if status and status not in allowed:
        problems.append(f"unknown status {status!r}")
        status = None
    since = parse_moment(shown["since"], now)
    until = parse_moment(shown["until"], now)
    for name, value, parsed in (("since", shown["since"], since), ("until", shown["until"], until)):
        if value and parsed is None:
            problems.append(f"{name}: {value!r} is neither ISO 8601 nor a span like 30m, 2h, 7d")
    try:
        before = page_cursor(q.get("before", ""))
    except ValueError as exc:
        problems.append(str(exc))
        before = None
    flt = EventFilter(
        status=status,
        kind=kind,
        event_name=shown["event"] or None,
        sink=shown["sink"] or None,
        search=shown["q"] or None,
        since=since,
        until=until,
        before_seq=before,
        limit=PAGE_SIZE + 1,
    )
    return flt, shown, problems


async def _per_sink(console: Console, rows: list[StoredEvent]) -> dict[str, list[tuple[str, str]]]:
    """(sink, delivery status) of each listed event; the store's readers answer these side by side."""
    found = await asyncio.gather(*(console.inbox.deliveries(e.event_id) for e in rows))
    return {e.event_id: [(d.sink, d.status) for d in ds] for e, ds in zip(rows, found, strict=True)}


async def _total(console: Console, flt: EventFilter) -> str:
    """How many events the filter matches, without the page bound (``10,000+`` past the cap)."""
    ids = await console.inbox.list_event_ids(replace(flt, before_seq=None, limit=COUNT_CAP + 1))
    return f"{COUNT_CAP:,}+" if len(ids) > COUNT_CAP else f"{len(ids):,}"


async def events(console: Console, request: Request) -> Response:
    now = datetime.now(UTC)
    flt, shown, problems = _filter_from(request, now)
    rows = list(await console.inbox.list_events(flt))
    orders: list[BookSummary] = []
    if shown["q"] and isinstance(console.inbox, BookStore):
        orders = list(await console.inbox.book_summaries(number=shown["q"], limit=5))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    per_sink = await _per_sink(console, rows)
    total = await _total(console, flt)
    kept = {k: v for k, v in shown.items() if v}
    older = urlencode({**kept, "before": rows[-1].seq}) if more and rows else None
    return console.page(
        request,
        "events.html",
        400 if problems else 200,
        rows=rows,
        per_sink=per_sink,
        total=total,
        orders=orders,
        number_of=number_of,
        shown=shown,
        problems=problems,
        statuses=DELIVERY_STATUSES if shown["sink"] else STATUSES,
        kinds=KINDS,
        sinks=console.sink_names,
        older=older,
        newest=urlencode(kept),
        paged=flt.before_seq is not None,
        back=request.url.path + ("?" + request.url.query if request.url.query else ""),
    )


def _timeline(attempts: list[Attempt], sink: str) -> list[Attempt]:
    return [a for a in attempts if a.sink == sink]


async def event(console: Console, request: Request) -> Response:
    event_id = request.path_params["event_id"]
    try:
        stored = await console.inbox.get_event(event_id)
    except EventNotFound:
        # A pasted prefix (8 characters or more) of one event's id leads to that event's page.
        full = await resolve_event_id(console.inbox, event_id)
        if full == event_id:
            raise
        return RedirectResponse(f"/events/{quote(full)}", status_code=303)
    deliveries = await console.inbox.deliveries(event_id)
    attempts = list(await console.inbox.attempts(event_id))
    shown = await render.pretty_body_off_loop(stored.body, stored.content_type)
    related: list[StoredEvent] = []
    anchor = stored.order_id or stored.purchase_order_number or stored.shipment_id or stored.shipment_number
    if anchor:
        found = await console.inbox.list_events(EventFilter(search=anchor, limit=21))
        related = [e for e in found if e.event_id != stored.event_id][:20]
    return console.page(
        request,
        "event.html",
        event=stored,
        deliveries=[(d, _timeline(attempts, d.sink)) for d in deliveries],
        body=shown.text,
        lexer=shown.lexer,
        truncated=shown.truncated,
        related=related,
        number_of=number_of,
        fields=_fields(stored),
        can_fetch=console.hooks.fetch_object is not None,
        book_link=await _book_link(console, stored),
        previews=console.sink_names,
    )


async def _book_link(console: Console, stored: StoredEvent) -> str | None:
    if stored.key is None or not isinstance(console.inbox, BookStore):
        return None
    if await console.inbox.book_entry(stored.key) is None:
        return None
    kind, _, object_id = stored.key.partition(":")
    return f"/{kind}s/{quote(object_id, safe='')}"


_ORDER_COLUMNS: tuple[str, ...] = (
    "line_position", "item_number", "item_name", "line_process_status", "schedule_position",
    "delivery_date", "quantity", "unit", "net_price", "currency", "line_last_updated_at",
)
_SHIPMENT_COLUMNS: tuple[str, ...] = (
    "load_carrier", "purchase_order_number", "line_position", "schedule_position", "item_number",
    "quantity", "unit", "despatch_advice_number",
)


async def _entry_page(console: Console, request: Request, key: str) -> Response:
    entry: BookEntry | None = None
    if isinstance(console.inbox, BookStore):
        entry = await console.inbox.book_entry(key)
    if entry is None:
        raise EventNotFound(f"no {key.split(':', 1)[0]} {key.split(':', 1)[1]} in the order book")
    data = entry.data
    if entry.kind == "order":
        columns, rows = _ORDER_COLUMNS, list(order_rows(data, event_name="", event_id=""))
    else:
        columns, rows = _SHIPMENT_COLUMNS, list(shipment_rows(data, event_name="", event_id=""))
    header: list[tuple[str, Any]] = [
        ("id", entry.object_id),
        ("number", entry.number),
        ("status", entry.status),
        ("last updated at", entry.last_updated_at),
    ]
    if entry.kind == "order":
        header += [
            ("supplier account", (data.get("buyerOrder") or {}).get("supplierAccountNumber")),
            ("buyer account", (data.get("supplierOrder") or {}).get("buyerAccountNumber")),
            ("version", data.get("version")),
            ("lines in the book", entry.line_count),
            ("lines of the last full fetch", entry.fetched_line_count),
        ]
    return console.page(
        request,
        "order.html",
        entry=entry,
        header=[(k, text_of(v)) for k, v in header if v is not None],
        columns=columns,
        rows=[[text_of(r.get(c)) for c in columns] for r in rows],
        body=render.pretty_body(json_bytes(data), "application/json").text,
    )


async def order(console: Console, request: Request) -> Response:
    return await _entry_page(console, request, f"order:{request.path_params['order_id']}")


async def shipment(console: Console, request: Request) -> Response:
    return await _entry_page(console, request, f"shipment:{request.path_params['shipment_id']}")


async def preview(console: Console, request: Request) -> Response:
    """What one sink would deliver for this event, rendered now (as ``tcwebhook render`` does)."""
    stored = await console.inbox.get_event(request.path_params["event_id"])
    name = request.path_params["sink"]
    output = console.outputs.get(name)
    if output is None:
        raise EventNotFound(f"no sink {name} is configured")
    entry = None
    if output.needs_book and stored.key is not None and isinstance(console.inbox, BookStore):
        entry = await console.inbox.book_entry(stored.key)
    body, error, media = "", "", ""
    try:
        rendered = output.render(stored, entry)
        media = rendered.content_type
        body = render.pretty_body(rendered.body, rendered.content_type).text
    except DeliveryError as exc:
        error = str(exc)
    return console.page(request, "preview.html", 200 if not error else 422, event=stored, sink=name,
                        output=output, body=body, error=error, media=media)


async def fetched(console: Console, request: Request) -> Response:
    """A GET trigger's object as the Tradecloud API has it now (what a delivery would send)."""
    stored = await console.inbox.get_event(request.path_params["event_id"])
    fetch = console.hooks.fetch_object
    obj: dict[str, Any] | None = None
    error = ""
    if not stored.kind.is_fetch:
        error = "This event is not a GET trigger: its body is the whole event."
    elif fetch is None:
        error = "No [tradecloud] credentials are configured here, so nothing can be fetched."
    else:
        try:
            async with asyncio.timeout(15):
                obj = await fetch(stored)
        except TimeoutError:
            error = "The Tradecloud API did not answer within 15 s."
        except DeliveryError as exc:  # what the fetch raises for API trouble, as a delivery would
            error = str(exc)
    body = (await render.pretty_body_off_loop(orjson.dumps(obj), "application/json")).text if obj is not None else ""
    return console.page(request, "fetched.html", 200 if obj is not None else 502, event=stored, body=body,
                        error=error)


def _fields(e: StoredEvent) -> list[tuple[str, str]]:
    pairs = [
        ("event id", e.event_id),
        ("status", e.status),
        ("received (UTC)", render.when(e.received_at)),
        ("kind", e.kind.value),
        ("event name", e.event_name),
        ("order id", e.order_id),
        ("purchase order", e.purchase_order_number),
        ("shipment id", e.shipment_id),
        ("shipment number", e.shipment_number),
        ("message id", e.message_id),
        ("last updated at", e.last_updated_at),
        ("ordering key", e.key),
        ("content type", e.content_type),
        ("size", f"{len(e.body)} bytes"),
        ("sequence", str(e.seq)),
    ]
    return [(k, v) for k, v in pairs if v]


def _download(body: bytes, content_type: str, name: str) -> Response:
    # Served as an attachment, never rendered: the bytes are whatever the sender posted.
    return Response(
        body,
        media_type="application/octet-stream",
        headers={
            "content-disposition": f'attachment; filename="{name}"',
            "x-original-content-type": content_type.replace("\r", "").replace("\n", "")[:200],
        },
    )


def _extension(content_type: str) -> str:
    return "xml" if "xml" in content_type else "json" if "json" in content_type else "bin"


async def event_body(console: Console, request: Request) -> Response:
    stored = await console.inbox.get_event(request.path_params["event_id"])
    return _download(stored.body, stored.content_type, f"{stored.event_id}.{_extension(stored.content_type)}")


async def dead(console: Console, request: Request) -> Response:
    sinks = await console.inbox.sink_health(console.sink_names)
    chosen = request.query_params.get("sink", "")
    rows: list[tuple[StoredEvent, str]] = []
    more = False
    try:
        before = page_cursor(request.query_params.get("before", ""))
    except ValueError as exc:
        return console.page(request, "error.html", 400, title="Bad request", message=f"{exc}.")
    # A sink's dead deliveries, or every event with a dead delivery (any sink) when none is chosen.
    flt = EventFilter(
        sink=chosen or None,
        status=DeliveryStatus.DEAD.value,
        before_seq=before,
        limit=PAGE_SIZE + 1,
    )
    found = list(await console.inbox.list_events(flt))
    more = len(found) > PAGE_SIZE
    page = found[:PAGE_SIZE]
    # The store's readers answer these side by side.
    deliveries = await asyncio.gather(*(console.inbox.deliveries(e.event_id) for e in page))
    per_sink: dict[str, list[tuple[str, str]]] = {}
    for e, ds in zip(page, deliveries, strict=True):
        errors = [d.last_error or "" for d in ds
                  if d.status == DeliveryStatus.DEAD.value and (not chosen or d.sink == chosen)]
        rows.append((e, errors[0] if errors else ""))
        per_sink[e.event_id] = [(d.sink, d.status) for d in ds]
    total = await _total(console, flt)
    kept = {"sink": chosen} if chosen else {}
    older = urlencode({**kept, "before": rows[-1][0].seq}) if more and rows else None
    return console.page(
        request,
        "dead.html",
        sinks=sinks,
        chosen=chosen,
        rows=rows,
        per_sink=per_sink,
        total=total,
        number_of=number_of,
        older=older,
        back=request.url.path + ("?" + request.url.query if request.url.query else ""),
    )


async def quarantine(console: Console, request: Request) -> Response:
    entries = await console.inbox.list_quarantined(PAGE_SIZE * 4)
    return console.page(request, "quarantine.html", entries=entries)


_DRIFT_LABELS = {
    "field": "unknown field",
    "enum_value": "unknown enum value",
    "event_name": "unknown event name",
    "event_key": "unknown event object",
    "number_as_text": "number sent as text",
}


async def drift(console: Console, request: Request) -> Response:
    """The contract-drift report (``tcwebhook contract drift`` in a browser), ``?days=`` back."""
    try:
        days = min(max(int(request.query_params.get("days", "7")), 1), 3650)
    except ValueError:
        days = 7
    records = await console.inbox.contract_drift(datetime.now(UTC) - timedelta(days=days))
    return console.page(request, "drift.html", records=records, days=days, labels=_DRIFT_LABELS)


async def quarantine_entry(console: Console, request: Request) -> Response:
    entry = await console.inbox.get_quarantined(request.path_params["entry_id"])
    shown = await render.pretty_body_off_loop(entry.body, entry.content_type)
    return console.page(request, "quarantine_entry.html", entry=entry, body=shown.text, lexer=shown.lexer,
                        truncated=shown.truncated)


async def quarantine_body(console: Console, request: Request) -> Response:
    entry = await console.inbox.get_quarantined(request.path_params["entry_id"])
    return _download(entry.body, entry.content_type, f"quarantine-{entry.id}.{_extension(entry.content_type)}")


# -- actions (operator) ------------------------------------------------------------------------


def _targets(ids: Sequence[str]) -> str:
    """Event ids for an audit entry's target (the count is in its detail)."""
    shown = ", ".join(ids[:20])
    return shown + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")


def _back(form: dict[str, list[str]], default: str, note: str, **numbers: int) -> Response:
    target = (form.get("back") or [default])[0]
    if not target.startswith("/") or target.startswith("//"):
        target = default  # never redirect off the console
    glue = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{glue}{note_query(note, **numbers)}", status_code=303)


async def replay(console: Console, request: Request) -> Response:
    form: dict[str, list[str]] = request.scope["console_form"]
    ids = [i for i in form.get("event_id", []) if i][:1000]
    if not ids:
        return _back(form, "/events", "nothing_selected")
    result = await console.inbox.replay(ids, force="force" in form)
    console.hooks.on_requeued()
    log.info("console_replay", events=len(ids), requeued=result.requeued, missing=len(result.missing),
             reclassified=result.reclassified)
    await console.audit(request, "events.replay", _targets(ids), events=len(ids), requeued=result.requeued,
                        force="force" in form, reclassified=result.reclassified)
    if result.missing:
        return _back(form, "/events", "replayed_missing", requeued=result.requeued, events=result.events,
                     missing=len(result.missing))
    return _back(form, "/events", "replayed", requeued=result.requeued, events=result.events)


async def replay_dead(console: Console, request: Request) -> Response:
    form: dict[str, list[str]] = request.scope["console_form"]
    sink = (form.get("sink") or [""])[0]
    if not sink:
        return _back(form, "/dead", "no_sink")
    started = time.perf_counter()
    ids = list(await console.inbox.list_event_ids(EventFilter(sink=sink, status="dead", limit=1_000_000)))
    requeued = 0
    for start in range(0, len(ids), REPLAY_BATCH):
        result = await console.inbox.replay(ids[start : start + REPLAY_BATCH], only_dead=True, sink=sink)
        requeued += result.requeued
    console.hooks.on_requeued()
    log.info("console_replay_dead", sink=sink, events=len(ids), requeued=requeued,
             seconds=round(time.perf_counter() - started, 3))
    await console.audit(request, "events.replay", f"dead deliveries of {sink}", sink=sink, events=len(ids),
                        requeued=requeued, only_dead=True)
    return _back(form, f"/dead?{urlencode({'sink': sink})}", "replayed_dead", requeued=requeued)


async def reprocess(console: Console, request: Request) -> Response:
    form: dict[str, list[str]] = request.scope["console_form"]
    entry_id = request.path_params["entry_id"]
    entry = await console.inbox.get_quarantined(entry_id)
    back = f"/quarantine/{entry_id}"
    try:
        stored = await console.inbox.reprocess_quarantined(
            entry_id, reparsed(entry, console.settings.server.max_body_bytes)
        )
    except ContractError as exc:
        await console.audit(request, "quarantine.reprocess", entry_id, "refused")
        log.info("console_reprocess_refused", quarantine_id=entry_id, reason=str(exc))
        return _back(form, back, "still_refused")
    except EventNotFound:
        raise
    console.hooks.on_requeued()
    log.info("console_reprocess", quarantine_id=entry_id, event_id=stored.event_id, duplicate=stored.duplicate)
    await console.audit(request, "quarantine.reprocess", entry_id, event_id=stored.event_id,
                        duplicate=stored.duplicate)
    note = "reprocessed_duplicate" if stored.duplicate else "reprocessed"
    return RedirectResponse(f"/events/{stored.event_id}?{note_query(note)}", status_code=303)


async def audit(console: Console, request: Request) -> Response:
    """The newest audit entries and whether the whole chain holds (operators only)."""
    session = request.scope["console_session"]
    if not session.user.operator:
        return console.page(request, "error.html", 403, title="Forbidden", message="The audit log is for operators.")
    report = await verify(console.inbox)
    after = report.last_seq - AUDIT_PAGE if report.broken is None else report.broken.seq - 1
    newest = await console.inbox.audit_entries(after=max(0, after), limit=AUDIT_PAGE)
    return console.page(request, "audit.html", records=list(reversed(newest)), checked=report.checked,
                        broken=report.broken, at=lambda t: datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S"))
