"""What a sink delivers: the one place that turns an event (or its book entry) into bytes.

Every sink builds an :class:`Output` from its settings once (``Output.from_settings``; a template
is compiled then, so a broken one stops start-up) and calls ``output.render(event, entry)`` for
each delivery. ``render`` returns the bytes, their Content-Type and the file extension a files
sink uses.

``payload``: ``event`` (the event itself) or ``order`` (the book's current order or shipment,
with the event's name and id beside it). ``format``: ``body`` (the bytes as received), ``json``
(the typed model), ``csv`` (``formats.rows``) or ``template`` (``formats.templates``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from tcwebhook.errors import PermanentError, StartupError
from tcwebhook.formats.csvfile import CsvOptions, write_csv
from tcwebhook.formats.rows import ORDER_COLUMNS, SHIPMENT_COLUMNS, Row, order_rows, shipment_rows
from tcwebhook.formats.templates import Template
from tcwebhook.formats.typed import Data, event_data, json_bytes, order_object, shipment_object
from tcwebhook.orderbook.book import BookEntry

if TYPE_CHECKING:
    from tcwebhook.sinks.event import EventLike

Payload = Literal["event", "order"]
Format = Literal["body", "json", "csv", "template"]

BOOK_KEY = "order_book"
"""``Event.extras`` key of the book entry handed to a sink whose payload is ``order``."""

_JSON = "application/json"
_CSV = "text/csv; charset=utf-8; header=present"
_CSV_NO_HEADER = "text/csv; charset=utf-8; header=absent"


def body_extension(content_type: str) -> str:
    """The file extension of a body as received (``.xml``, ``.json``, else ``.bin``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media.endswith(("/xml", "+xml")):
        return ".xml"
    return ".json" if media.endswith(("/json", "+json")) else ".bin"


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a sink delivers for one event."""

    body: bytes
    content_type: str
    extension: str  # with the dot: ".json", ".csv", ".xml", …


class OutputOptions(Protocol):
    """The sink settings keys that choose the output (every ``[[sinks]]`` entry has them)."""

    @property
    def name(self) -> str: ...
    @property
    def payload(self) -> Payload: ...
    @property
    def format(self) -> Format: ...
    @property
    def csv_delimiter(self) -> str: ...
    @property
    def csv_decimal(self) -> str: ...
    @property
    def csv_header(self) -> bool: ...
    @property
    def csv_columns(self) -> tuple[str, ...]: ...
    @property
    def csv_bom(self) -> bool: ...
    @property
    def template(self) -> Path | None: ...


def _check_columns(sink: str, columns: Sequence[str]) -> None:
    known = set(ORDER_COLUMNS) | set(SHIPMENT_COLUMNS)
    for name in columns:
        if name not in known:
            raise StartupError(
                f"Sink {sink!r}: csv_columns names {name!r}, which is no CSV column; see the README's CSV columns."
            )


class Output:
    """A sink's choice of payload and format, ready to render events."""

    def __init__(
        self,
        *,
        sink: str,
        payload: Payload = "event",
        format: Format = "body",
        csv: CsvOptions | None = None,
        csv_columns: Sequence[str] = (),
        template: Path | None = None,
    ) -> None:
        self.sink = sink
        self.payload = payload
        self.format = format
        self.csv = csv or CsvOptions()
        if payload == "order" and format == "body":
            raise StartupError(f"Sink {sink!r}: payload = \"order\" needs format = \"json\", \"csv\" or \"template\".")
        if self.csv.delimiter == self.csv.decimal:
            raise StartupError(f"Sink {sink!r}: csv_delimiter and csv_decimal must differ; set csv_delimiter = \";\".")
        _check_columns(sink, csv_columns)
        self.csv_columns = tuple(csv_columns)
        if (format == "template") != (template is not None):
            raise StartupError(
                f"Sink {sink!r}: format = \"template\" and the template key go together; set both or neither."
            )
        self.template = Template(template, sink=sink) if template is not None else None

    @classmethod
    def from_settings(cls, cfg: OutputOptions) -> Output:
        """The output of one ``[[sinks]]`` entry; ``StartupError`` (one sentence) when unusable."""
        return cls(
            sink=cfg.name,
            payload=cfg.payload,
            format=cfg.format,
            csv=CsvOptions(cfg.csv_delimiter, cfg.csv_decimal, cfg.csv_header, cfg.csv_bom),
            csv_columns=cfg.csv_columns,
            template=cfg.template,
        )

    @property
    def needs_book(self) -> bool:
        """Whether a delivery needs the event's book entry (``payload = "order"``)."""
        return self.payload == "order"

    @property
    def is_body(self) -> bool:
        """The bytes as received, untouched (the default)."""
        return self.format == "body"

    def extension_for(self, event: EventLike) -> str:
        """The file extension of what ``render`` gives for this event, without rendering it."""
        if self.format == "body":
            return body_extension(event.content_type)
        if self.format == "json":
            return ".json"
        if self.format == "csv":
            return ".csv"
        assert self.template is not None
        return self.template.extension

    def render(self, event: EventLike, entry: BookEntry | None = None) -> Rendered:
        """What the sink delivers for ``event``.

        ``entry`` is the event's book entry, needed when the payload is ``order``; by default it is
        taken from ``event.extras[BOOK_KEY]``, where the delivery puts it. Raises
        ``PermanentError`` when the event cannot be rendered (a template failing, an order
        payload for an event with no book entry): the same event would fail again.
        """
        if self.format == "body":
            return Rendered(event.body, event.content_type, body_extension(event.content_type))
        if entry is None and self.needs_book:
            found = getattr(event, "extras", {}).get(BOOK_KEY)
            entry = found if isinstance(found, BookEntry) else None
        data = self._payload_data(event, entry)
        if self.format == "json":
            return Rendered(json_bytes(data), _JSON, ".json")
        if self.format == "csv":
            return self._csv(event, data)
        assert self.template is not None
        order, shipment = self._objects(data)
        body = self.template.render(template_context(event, data, order, shipment))
        return Rendered(body, self.template.content_type, self.template.extension)

    def _payload_data(self, event: EventLike, entry: BookEntry | None) -> Data:
        if self.payload == "event":
            return event_data(event)
        if entry is None:
            raise PermanentError(
                "payload = \"order\": this event belongs to no order or shipment in the order book"
            )
        return entry.payload(event_name=event.event_name, event_id=event.event_id)

    def _objects(self, data: Data) -> tuple[Data | None, Data | None]:
        """The order and the shipment object of the payload (one of them is None)."""
        if self.payload == "event":
            return order_object(data), shipment_object(data)
        return data.get("order"), data.get("shipment")

    def rows(self, event: EventLike, entry: BookEntry | None = None) -> LineRows:
        """The CSV format's rows of ``event`` (of its book entry with ``payload = "order"``), with
        the columns that format writes for them; the sql sink's ``rows = "lines"`` inserts these."""
        if entry is None and self.needs_book:
            found = getattr(event, "extras", {}).get(BOOK_KEY)
            entry = found if isinstance(found, BookEntry) else None
        return self._rows(event, self._payload_data(event, entry))

    def _rows(self, event: EventLike, data: Data) -> LineRows:
        order, shipment = self._objects(data)
        if shipment is not None:
            rows = shipment_rows(shipment, event_name=event.event_name, event_id=event.event_id)
            return LineRows("shipment", self.csv_columns or SHIPMENT_COLUMNS, list(rows))
        rows = order_rows(order or {}, event_name=event.event_name, event_id=event.event_id)
        return LineRows("order", self.csv_columns or ORDER_COLUMNS, list(rows))

    def _csv(self, event: EventLike, data: Data) -> Rendered:
        lines = self._rows(event, data)
        content_type = _CSV if self.csv.header else _CSV_NO_HEADER
        return Rendered(write_csv(lines.rows, lines.columns, self.csv), content_type, ".csv")


@dataclass(frozen=True, slots=True)
class LineRows:
    """The rows of one event as the CSV format has them: one per schedule line or shipment line."""

    of: Literal["order", "shipment"]
    columns: Sequence[str]
    rows: list[Row]


def template_context(event: EventLike, data: Data, order: Data | None, shipment: Data | None) -> dict[str, Any]:
    """What a template sees (README, "Templates"): the same names for both payloads."""
    if order is not None:
        rows = list(order_rows(order, event_name=event.event_name, event_id=event.event_id))
    elif shipment is not None:
        rows = list(shipment_rows(shipment, event_name=event.event_name, event_id=event.event_id))
    else:
        rows = []
    return {
        "event": {
            "id": event.event_id,
            "name": event.event_name,
            "kind": event.kind.value,
            "seq": event.seq,
            "received_at": event.received_at.isoformat(),
        },
        "data": data,
        "order": order,
        "shipment": shipment,
        "rows": rows,
        "book": data.get("book"),
    }


def render(event: EventLike, cfg: OutputOptions, entry: BookEntry | None = None) -> Rendered:
    """One-off rendering from sink settings (compiles the template each call; sinks keep an Output)."""
    return Output.from_settings(cfg).render(event, entry)
