"""``send``: Tradecloud-shaped webhook calls to any HTTPS URL, also as a load generator."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tcwebhook.errors import StartupError
from tcwebhook.simulator.calls import (
    BodyFormat,
    IdPlacement,
    WebhookRequest,
    default_events,
    file_requests,
    plan_requests,
)
from tcwebhook.simulator.credentials import Credentials
from tcwebhook.simulator.samples import SampleFactory, parse_selection
from tcwebhook.simulator.sender import (
    TLS_REFUSED,
    Outcome,
    SendAttempt,
    Sender,
    Verdict,
    classify,
    require_https,
    sender_backoff,
)
from tcwebhook.simulator.stats import Tally
from tcwebhook.terminal import cell, markup_safe
from tcwebhook.transport.certs import client_context

MAX_EVENT_LINES = 50


class IdIn(StrEnum):
    """Where a GET notification carries the id."""

    PATH = "path"
    QUERY = "query"


class _Reporter:
    """Progress bar plus one line per retry or failed call (capped, so a load run stays readable)."""

    def __init__(self, console: Console, total: int, *, quiet: bool) -> None:
        self._console = console
        self._quiet = quiet
        self._lines = 0
        self.progress = Progress(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=quiet or not console.is_terminal,
            transient=True,
        )
        self._task = self.progress.add_task("send", total=total)

    def _line(self, text: str) -> None:
        if self._quiet:
            return
        self._lines += 1
        if self._lines <= MAX_EVENT_LINES:
            self._console.print(text)
        elif self._lines == MAX_EVENT_LINES + 1:
            self._console.print("… further retry and failure lines suppressed")

    def attempted(self, outcome: Outcome, attempt: SendAttempt, next_wait: float | None) -> None:
        # The server's answers (and their details) are not ours: no markup, no control bytes.
        what = markup_safe(attempt.status if attempt.status is not None else attempt.error)
        ident = markup_safe(f"{outcome.label} {outcome.message_id or ''}".strip())
        if next_wait is not None:
            self._line(f"[yellow]↻[/yellow] {what} {ident} (attempt {attempt.number}) → retry in {next_wait:.2f} s")
        elif outcome.accepted or outcome.result == TLS_REFUSED:
            return  # a refusal is explained once, after the run
        elif classify(attempt.status) is Verdict.RETRY:
            self._line(f"[red]✗[/red] {what} {ident}: {markup_safe(outcome.detail or 'gave up')}")
        else:
            self._line(f"[red]✗[/red] {what} {ident}: final, 4xx and 500 are not retried")

    def finished(self, outcome: Outcome) -> None:
        self.progress.advance(self._task)


def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="tcwebhook send", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for code, n in summary["status"].items():
        table.add_row(cell(f"status {code}"), str(n))
    table.add_row("events sent", str(summary["sent"]))
    if summary["not_sent"]:
        table.add_row("not sent", str(summary["not_sent"]))
    if summary["duplicates"]:
        table.add_row("duplicates sent", str(summary["duplicates"]))
    table.add_row("accepted (2xx)", str(summary["accepted"]))
    table.add_row("retries", str(summary["retries"]))
    for name, value in summary["latency_ms"].items():
        table.add_row(f"latency {name}", f"{value:.1f} ms")
    table.add_row("requests/s", f"{summary['requests_per_s']:.1f}")
    table.add_row("elapsed", f"{summary['elapsed_s']:.2f} s")
    return table


async def _run(sender: Sender, requests: Iterator[WebhookRequest], concurrency: int) -> Tally:
    async with sender:
        return await sender.run(requests, concurrency=concurrency)


def send(
    url: Annotated[str, typer.Argument(help="The webhook URL (https:// only).")],
    token: Annotated[str | None, typer.Option(help="Static bearer token.", envvar="TCWEBHOOK_SEND_TOKEN")] = None,
    basic: Annotated[
        str | None, typer.Option(help="Basic credentials USER:PASS.", envvar="TCWEBHOOK_SEND_BASIC")
    ] = None,
    ca_bundle: Annotated[
        Path | None, typer.Option(help="Trust only these CA certificates (PEM) instead of the system roots.")
    ] = None,
    events: Annotated[
        str | None,
        typer.Option(
            help="mix, order, single-delivery, documents, shipment, or a comma list of event names "
            "[default: mix with --shipment-url; else shipment when the URL path mentions shipments, "
            "else order,single-delivery,documents].",
            show_default=False,
        ),
    ] = None,
    single_delivery: Annotated[
        bool, typer.Option("--single-delivery", help="Put named order events in singleDeliveryOrderEvent.")
    ] = False,
    body_format: Annotated[BodyFormat, typer.Option("--format", help="Body format.")] = BodyFormat.JSON,
    body: Annotated[Path | None, typer.Option(help="Send this file as the body instead of samples.")] = None,
    content_type: Annotated[
        str | None, typer.Option(help="Content-Type for --body (default: sniffed JSON or XML).")
    ] = None,
    get: Annotated[bool, typer.Option("--get", help="The historic GET notification: only an id.")] = False,
    id_in: Annotated[IdIn, typer.Option(help="With --get: the id in the path or the query.")] = IdIn.PATH,
    shipment_url: Annotated[str | None, typer.Option(help="URL for shipment events (default: URL).")] = None,
    count: Annotated[int, typer.Option(min=1, help="How many calls to make.")] = 1,
    concurrency: Annotated[int, typer.Option(min=1, help="Calls in flight at once.")] = 1,
    max_retries: Annotated[int, typer.Option(min=0, help="Retries per call for > 500 / no answer.")] = 5,
    initial_wait: Annotated[float, typer.Option(min=0, help="First back-off in seconds (doubles).")] = 0.5,
    max_wait: Annotated[float, typer.Option(min=0, help="Longest back-off in seconds.")] = 30.0,
    timeout: Annotated[float, typer.Option(min=0.001, help="Per-request timeout in seconds.")] = 10.0,
    duplicate_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Share of calls that redeliver an earlier body.")
    ] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed for repeatable ids and numbers.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or per-event lines.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Send Tradecloud-shaped webhook calls; exit 1 unless every call was answered 2xx."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    try:
        require_https(url)
        if shipment_url:
            require_https(shipment_url)
        credentials = Credentials.parse(token=token, basic=basic)
        if body is not None and get:
            raise ValueError("--body and --get exclude each other: a GET call has no body")
        selection = parse_selection(events or default_events(url, shipment_url), single_delivery=single_delivery)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        ctx = client_context(ca_bundle)
    except StartupError as exc:
        print(f"tcwebhook: {exc}", file=sys.stderr)
        raise typer.Exit(StartupError.exit_code) from None

    placement: IdPlacement = "query" if id_in is IdIn.QUERY else "path"
    if body is not None:
        try:
            requests = file_requests(body, count, url=url, content_type=content_type)
            first = next(requests)
        except OSError as exc:
            raise typer.BadParameter(f"cannot read --body {body}: {exc.strerror or exc}") from None
        requests = _chain(first, requests)
    else:
        rng = random.Random(seed)
        factory = SampleFactory(seed=seed)
        requests = plan_requests(
            factory.stream(selection, count),
            count,
            url=url,
            shipment_url=shipment_url,
            fmt=body_format,
            get=get,
            id_in=placement,
            duplicate_rate=duplicate_rate,
            rng=rng,
        )
    backoff = sender_backoff(max_retries=max_retries, initial_wait=initial_wait, max_wait=max_wait)
    reporter = _Reporter(err, count, quiet=quiet or as_json)
    sender = Sender(
        ssl_context=ctx,
        credentials=credentials,
        backoff=backoff,
        timeout=timeout,
        max_connections=concurrency,
        observer=reporter,
    )
    with reporter.progress:
        tally = asyncio.run(_run(sender, requests, concurrency))
    summary = tally.summary(planned=count)
    if tally.refusal:
        err.print(f"[red]refused:[/red] {markup_safe(tally.refusal)}")
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        out.print(_summary_table(summary))
    if not tally.all_accepted or tally.events < count:
        raise typer.Exit(1)


def _chain(first: WebhookRequest, rest: Iterator[WebhookRequest]) -> Iterator[WebhookRequest]:
    yield first
    yield from rest


def register(app: typer.Typer) -> None:
    """Add ``send`` to ``app``."""
    app.command(
        "send",
        help="Send Tradecloud-shaped webhook calls (samples or a file) like the real sender.",
    )(send)
