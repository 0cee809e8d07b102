"""The order book: the current state of every order and shipment, as the events have told it.

Order events carry only the lines they touched (contract §3.1); shipment events carry the whole
shipment. The rules that fold events into one current state:

* the order header (everything but the lines) comes from the newest event, by ``lastUpdatedAt``
  and then ``version``;
* lines are merged by line ``id``: per line the newest ``lastUpdatedAt`` wins, so an older event
  arriving late never overwrites a newer line; lines never seen are simply absent;
* a full order fetched from the Tradecloud API replaces the order as a whole when it is at least
  as new as the header; an older one only adds the lines not known yet (and newer per line);
  either way the entry remembers how many lines the fetch returned;
* single-delivery events feed the same lines (their shape differs, the rule does not);
  order-documents events add their documents;
* a shipment is the newest complete shipment (by ``meta.lastUpdatedAt``).

Ties go to the later arrival. Every event is recorded (id, name, ``lastUpdatedAt``) once.

``update_of`` turns one typed event into a :class:`BookUpdate` (pure data, with sortable
stamps); ``apply`` folds an update into a :class:`BookEntry`. The stores apply the very same
rules in SQL (conditional upserts on the stamps), in the transaction that stores the event.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from tcwebhook.contract.kinds import EventKind
from tcwebhook.contract.models import OrderEventBase, OrderEventLine, Shipment, SingleDeliveryLine, TradecloudModel

Data = dict[str, Any]
BookKind = Literal["order", "shipment"]
Source = Literal["event", "fetch", "documents"]

LOWEST = "0000-00-00T00:00:00.000000Z"  # below every real time
_NO_VERSION = -1


@functools.lru_cache(maxsize=4096)
def time_stamp(text: str | None) -> str:
    """``lastUpdatedAt`` as text that sorts by time: UTC, microseconds (unreadable: lowest)."""
    if not text:
        return LOWEST
    try:
        at = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        return LOWEST
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    # An event's header and lines mostly share one time: the cache makes the second one free.
    return at.isoformat(timespec="microseconds") + "Z"


@functools.lru_cache(maxsize=4096)
def stamp(last_updated_at: str | None, version: int | None = None) -> str:
    """The sort key of a state: its time, then its version (``2025-…Z|000000000003``)."""
    number = _NO_VERSION if version is None else max(version, 0)
    return f"{time_stamp(last_updated_at)}|{number + 1:012d}"


def line_key(line: Mapping[str, Any]) -> str | None:
    """Lines merge by Tradecloud line id; a line without one by its buyer position."""
    line_id = line.get("id")
    if isinstance(line_id, str) and line_id:
        return line_id
    buyer = line.get("buyerLine")
    position = buyer.get("position") if isinstance(buyer, Mapping) else None
    return f"position:{position}" if isinstance(position, str) and position else None


def _position_sort(line: Mapping[str, Any]) -> tuple[int, str, str]:
    buyer = line.get("buyerLine")
    position = buyer.get("position") if isinstance(buyer, Mapping) else None
    text = position if isinstance(position, str) else ""
    return (0 if text else 1, text.zfill(20), str(line.get("id") or ""))


# -- stored form: JSON with exact numbers --------------------------------------------------------


def _exact(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f").encode())  # every digit, never an exponent
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dump(data: Any) -> bytes:
    """Compact JSON; decimals as exact JSON numbers."""
    out: bytes = orjson.dumps(data, default=_exact)
    return out


def load(raw: bytes | str | memoryview) -> Any:
    """Back from ``dump``: numbers with a fraction are ``Decimal`` again, exactly."""
    if isinstance(raw, memoryview):
        raw = bytes(raw)
    return json.loads(raw, parse_float=Decimal)


# -- what one event says -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookEvent:
    """One event that built an entry."""

    event_id: str
    event_name: str
    last_updated_at: str | None
    source: Source = "event"
    seq: int = 0

    def as_data(self) -> Data:
        return {
            "eventId": self.event_id,
            "eventName": self.event_name,
            "lastUpdatedAt": self.last_updated_at,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class LineUpdate:
    key: str
    stamp: str
    data: Data


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """What one event contributes to its book entry."""

    key: str  # "order:<id>" or "shipment:<id>", the routing key
    kind: BookKind
    object_id: str
    source: Source
    header: Data | None  # the order without its lines / the whole shipment; None: keep
    header_stamp: str
    lines: tuple[LineUpdate, ...] = ()
    documents: tuple[Data, ...] = ()
    number: str | None = None  # purchase order number / shipment number
    status: str | None = None  # process status of the header

    def event(self, event_id: str, event_name: str, seq: int = 0) -> BookEvent:
        last = self.header.get("lastUpdatedAt") if self.header else None
        if self.kind == "shipment" and self.header:
            meta = self.header.get("meta")
            last = meta.get("lastUpdatedAt") if isinstance(meta, Mapping) else None
        return BookEvent(event_id, event_name, last, self.source, seq)


def order_header(order: Mapping[str, Any]) -> Data:
    """An order object without its lines."""
    return {k: v for k, v in order.items() if k != "lines"}


def documents_header(event: Mapping[str, Any]) -> Data:
    """What an ``orderDocumentsEvent`` says of the order itself (its header until an order event)."""
    header: Data = {"orderId": event.get("orderId")}
    for key in ("buyerOrder", "supplierOrder"):
        if isinstance(event.get(key), Mapping):
            header[key] = event[key]
    return header


def order_number(order: Mapping[str, Any]) -> str | None:
    buyer = order.get("buyerOrder")
    number = buyer.get("purchaseOrderNumber") if isinstance(buyer, Mapping) else None
    if number is None and isinstance(order.get("order"), Mapping):
        number = order["order"].get("purchaseOrderNumber")
    return number if isinstance(number, str) else None


def status_of(obj: Mapping[str, Any]) -> str | None:
    status = obj.get("status")
    value = status.get("processStatus") if isinstance(status, Mapping) else None
    if value is None:
        value = obj.get("processStatus")
    return value if isinstance(value, str) else None


def _lines(order: Mapping[str, Any]) -> tuple[LineUpdate, ...]:
    out: list[LineUpdate] = []
    for line in order.get("lines") or ():
        if not isinstance(line, Mapping):
            continue
        key = line_key(line)
        if key is not None:
            out.append(LineUpdate(key, stamp(line.get("lastUpdatedAt")), dict(line)))
    return tuple(out)


def documents_of(event: Mapping[str, Any]) -> tuple[Data, ...]:
    """Order and line documents of an ``orderDocumentsEvent`` (line ones say which line)."""
    docs: list[Data] = []
    seen: set[str] = set()

    def add(doc: Any, line: Mapping[str, Any] | None) -> None:
        if not isinstance(doc, Mapping):
            return
        entry = dict(doc)
        if line is not None:
            entry["lineId"] = line.get("id")
            buyer = line.get("buyerLine")
            entry["linePosition"] = line.get("position") or (
                buyer.get("position") if isinstance(buyer, Mapping) else None
            )
        ident = dump([entry.get("objectId"), entry.get("url"), entry.get("code"), entry.get("lineId"),
                      entry.get("linePosition"), entry.get("name")]).decode()
        if ident not in seen:
            seen.add(ident)
            docs.append(entry)

    for holder in (event, event.get("order"), event.get("buyerOrder"), event.get("supplierOrder")):
        if isinstance(holder, Mapping):
            for doc in holder.get("documents") or ():
                add(doc, None)
    for line in event.get("lines") or ():
        if isinstance(line, Mapping):
            for doc in line.get("documents") or ():
                add(doc, line)
    return tuple(docs)


def update_of(kind: EventKind, envelope: Mapping[str, Any]) -> BookUpdate | None:
    """The book update of one typed envelope (``formats.typed.event_data``), None if it has none.

    A GET trigger not resolved yet (only an id) contributes nothing; a resolved one (or an event
    reconciliation stored with the fetched object) is a full fetch.
    """
    if kind in (EventKind.SHIPMENT, EventKind.SHIPMENT_FETCH):
        shipment = envelope.get("shipment") or envelope.get("shipmentEvent")
        if not isinstance(shipment, Mapping) or not shipment.get("id"):
            return None
        meta = shipment.get("meta")
        last = meta.get("lastUpdatedAt") if isinstance(meta, Mapping) else None
        supplier = shipment.get("supplierShipment")
        number = supplier.get("shipmentNumber") if isinstance(supplier, Mapping) else None
        return BookUpdate(
            key=f"shipment:{shipment['id']}",
            kind="shipment",
            object_id=str(shipment["id"]),
            source="fetch" if kind.is_fetch else "event",
            header=dict(shipment),
            header_stamp=stamp(last),
            number=number if isinstance(number, str) else None,
            status=status_of(shipment),
        )
    if kind is EventKind.ORDER_DOCUMENTS:
        event = envelope.get("orderDocumentsEvent")
        if not isinstance(event, Mapping) or not event.get("orderId"):
            return None
        return BookUpdate(
            key=f"order:{event['orderId']}",
            kind="order",
            object_id=str(event["orderId"]),
            source="documents",
            header=documents_header(event),
            header_stamp=LOWEST,  # never newer than a real order event's header
            documents=documents_of(event),
            number=order_number(event),
        )
    order = None
    for key in ("orderEvent", "singleDeliveryOrderEvent", "simpleOrderEvent"):
        if isinstance(envelope.get(key), Mapping):
            order = envelope[key]
            break
    if order is None or not order.get("orderId"):
        return None
    version = order.get("version")
    return BookUpdate(
        key=f"order:{order['orderId']}",
        kind="order",
        object_id=str(order["orderId"]),
        source="fetch" if kind.is_fetch else "event",
        header=order_header(order),
        header_stamp=stamp(order.get("lastUpdatedAt"), version if isinstance(version, int) else None),
        lines=_lines(order),
        number=order_number(order),
        status=status_of(order),
    )


# -- the current state ---------------------------------------------------------------------------


@dataclass(slots=True)
class BookEntry:
    """The current state of one order or shipment."""

    key: str
    kind: BookKind
    object_id: str
    header: Data
    header_stamp: str
    lines: dict[str, LineUpdate] = field(default_factory=dict)
    documents: list[Data] = field(default_factory=list)
    events: list[BookEvent] = field(default_factory=list)
    fetched_line_count: int | None = None
    number: str | None = None
    status: str | None = None

    @property
    def line_count(self) -> int:
        return len(self.lines)

    @property
    def last_updated_at(self) -> str | None:
        if self.kind == "shipment":
            meta = self.header.get("meta")
            value = meta.get("lastUpdatedAt") if isinstance(meta, Mapping) else None
        else:
            value = self.header.get("lastUpdatedAt")
        return value if isinstance(value, str) else None

    @property
    def data(self) -> Data:
        """The current order (an ``orderEvent``-shaped object, lines by position) or shipment,
        as the typed model has it (the stored parts may come from JSON read as plain data)."""
        if self.kind == "shipment":
            return _typed(Shipment, self.header)
        lines = sorted((_typed_line(u.data) for u in self.lines.values()), key=_position_sort)
        out = {**_typed(OrderEventBase, self.header), "lines": lines}
        if self.documents:
            out["documents"] = list(self.documents)
        return out

    def book_data(self) -> Data:
        """What the entry knows about itself: counts and the events that built it."""
        return {
            "key": self.key,
            "lineCount": self.line_count if self.kind == "order" else None,
            "fetchedLineCount": self.fetched_line_count,
            "events": [e.as_data() for e in self.events],
        }

    def payload(self, *, event_name: str, event_id: str) -> Data:
        """What ``payload = "order"`` delivers: the event's name and id beside the current state."""
        return {"eventName": event_name, "eventId": event_id, self.kind: self.data, "book": self.book_data()}

    def as_data(self) -> Data:
        """The entry for ``--json`` listings and the console."""
        return {
            "key": self.key,
            "kind": self.kind,
            "id": self.object_id,
            "number": self.number,
            "status": self.status,
            "lastUpdatedAt": self.last_updated_at,
            **{k: v for k, v in self.book_data().items() if k != "key"},
            self.kind: self.data,
        }


def _typed(model: type[TradecloudModel], data: Data) -> Data:
    try:
        typed: Data = model.model_validate(data).model_dump(mode="python", by_alias=True, exclude_none=True)
    except ValidationError:
        return dict(data)  # what was stored passed validation once; never fail a read over it
    return typed


def _typed_line(line: Data) -> Data:
    single = "statusLine" in line or "scheduledDelivery" in line
    return _typed(SingleDeliveryLine if single else OrderEventLine, line)


def _newer(incoming: str, current: str) -> bool:
    return incoming >= current  # ties: the later arrival wins


def apply(entry: BookEntry | None, update: BookUpdate, event: BookEvent) -> BookEntry:
    """``entry`` with ``update`` folded in (a new entry when None); pure, ``entry`` is not changed."""
    if entry is not None and any((e.event_id, e.source) == (event.event_id, event.source) for e in entry.events):
        return entry
    if entry is None:
        entry = BookEntry(update.key, update.kind, update.object_id, {}, LOWEST)
    else:
        entry = replace(entry, lines=dict(entry.lines), documents=list(entry.documents), events=list(entry.events))
    header_replaced = False
    if update.source == "documents":
        if not entry.header and update.header is not None:
            entry.header, entry.header_stamp = dict(update.header), update.header_stamp
        entry.number = entry.number or update.number
    elif update.header is not None and (not entry.header or _newer(update.header_stamp, entry.header_stamp)):
        entry.header, entry.header_stamp = dict(update.header), update.header_stamp
        entry.status = update.status
        entry.number = update.number or entry.number
        header_replaced = True
    if update.source == "fetch" and update.kind == "order":
        entry.fetched_line_count = len(update.lines)
        if header_replaced:
            entry.lines = {}  # the fetched order replaces the book's order as a whole
    for line in update.lines:
        current = entry.lines.get(line.key)
        if current is None or _newer(line.stamp, current.stamp):
            entry.lines[line.key] = line
    known = {dump(d).decode() for d in entry.documents}
    entry.documents.extend(d for d in update.documents if dump(d).decode() not in known)
    entry.events.append(event)
    return entry


def replay(updates: Sequence[tuple[BookUpdate, BookEvent]]) -> dict[str, BookEntry]:
    """Every entry the updates build, applied in the order given (arrival order)."""
    book: dict[str, BookEntry] = {}
    for update, event in updates:
        book[update.key] = apply(book.get(update.key), update, event)
    return book
