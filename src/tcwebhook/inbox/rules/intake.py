"""Storing: events with their deliveries (duplicates detected), the quarantine, and prune.

Storing an event creates, in the same transaction, one delivery per sink. A new delivery is
``blocked`` when a pending one of its key exists (it waits behind that head, see
``rules.delivery``). On PostgreSQL the store share-locks the pending row it saw: a settle of
that row racing the store then waits for the store to commit, so its unblock statement, which
runs after, sees the new row (otherwise each would miss the other's uncommitted row and leave
the new delivery blocked for good).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import orjson

from tcwebhook.errors import EventNotFound, StoreUnavailable
from tcwebhook.inbox.base import NewEvent, StoreResult
from tcwebhook.inbox.ids import new_id, updated_micros
from tcwebhook.inbox.rules import book
from tcwebhook.inbox.rules.drift import record_drift
from tcwebhook.inbox.schema import children
from tcwebhook.inbox.tx import Bulk, Row, Tx
from tcwebhook.orderbook.book import BookEvent
from tcwebhook.orderbook.sql import with_event

INSERT_EVENT = (
    "INSERT INTO events (event_id, dedupe_key, received_at, kind, event_name, status, key,"
    " order_id, shipment_id, purchase_order_number, shipment_number, message_id, last_updated_at,"
    " updated_us, content_type, headers, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (dedupe_key) DO NOTHING RETURNING seq"
)
_EXISTING = "SELECT event_id, seq FROM events WHERE dedupe_key = ?"
# One statement for all sinks; CASTs give PostgreSQL the types of the bare values.
_INSERT_DELIVERIES = """
INSERT INTO deliveries (seq, sink, key, status, next_attempt_at, blocked, updated_at)
SELECT CAST(? AS BIGINT), s.value, CAST(? AS TEXT), 'pending', CAST(? AS DOUBLE PRECISION),
    CASE WHEN EXISTS (
        SELECT 1 FROM deliveries AS p /*sqlite INDEXED BY deliveries_head */
        WHERE p.sink = s.value AND p.key = ? AND p.status = 'pending'
        LIMIT 1 /*pg FOR SHARE */) THEN 1 ELSE 0 END,
    CAST(? AS DOUBLE PRECISION)
FROM (SELECT value FROM TEXTS(?)) AS s
"""
_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (id, received_at, route, content_type, reason, status_code, headers, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# Settled long enough ago: delivered or superseded, and no delivery touched since ``before``;
# rows another pruner holds are skipped.
_PRUNABLE = """
SELECT e.seq FROM events AS e
WHERE e.received_at < ? AND e.status IN ('delivered', 'superseded')
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.seq = e.seq AND (d.status IN ('pending', 'dead', 'unrecognised') OR d.updated_at >= ?))
ORDER BY e.received_at LIMIT ?
/*pg FOR UPDATE OF e SKIP LOCKED */
"""


OnStored = Callable[[Tx, int, NewEvent], Awaitable[None]]


async def keep_book(tx: Tx, seq: int, event: NewEvent) -> None:
    """The order book follows every stored event (``rules.book``)."""
    write = event.book_write()
    if write is None:
        return
    if write.folds:
        await book.apply_stored(tx, write, seq)
    else:
        # The stored event is the reference: its id and name are the events table's.
        await book.apply(tx, write, BookEvent("", event.event_name, write.last_updated_at, write.source, seq))


async def mark_reconciled(tx: Tx, seq: int, event: NewEvent) -> None:
    """Events stored by reconciliation are marked beside the event (``EventFilter.reconciled``)."""
    if event.reconciled:
        await tx.send("INSERT INTO reconciled (seq) VALUES (?)", (seq,))


async def record_trace(tx: Tx, seq: int, event: NewEvent) -> None:
    """The request's trace context, when tracing is on (see ``telemetry.tracing``)."""
    if event.trace_context is not None:
        await tx.send("INSERT INTO traces (seq, traceparent) VALUES (?, ?)", (seq, event.trace_context))


async def trace_context(tx: Tx, seq: int) -> str | None:
    row = await tx.one("SELECT traceparent FROM traces WHERE seq = ?", (seq,))
    return str(row[0]) if row is not None and row[0] is not None else None


# What else a new event writes, in its store's transaction (after the event and its deliveries;
# not for a duplicate). Each takes the transaction, the new ``seq`` and the event; send with
# ``tx.send`` where no result is read, so PostgreSQL's pipeline of stores stays one round trip.
ON_STORED: tuple[OnStored, ...] = (mark_reconciled, record_drift, record_trace, keep_book)


def headers_json(headers: Mapping[str, str]) -> bytes:
    if not headers:
        return b"{}"
    return orjson.dumps(headers if type(headers) is dict else dict(headers))


_INSERT_EVENT_AND_BOOK = with_event(INSERT_EVENT)


@dataclass(frozen=True, slots=True)
class EventIntake:
    """How new events enter: the sinks each gets a delivery for, and when they are due."""

    sinks: tuple[str, ...]
    hold_new: bool  # synchronous delivery: new deliveries wait for the request (claim_event)
    # The store writes an event's book header and lines in the statement inserting the event
    # (``orderbook.sql.with_event``; PostgreSQL), instead of in ``keep_book`` after it.
    book_with_event: bool = False

    def store(self, event: NewEvent, now: float) -> Bulk:
        """The rule storing ``event``; a duplicate answers with the event stored first."""
        params = (
            new_id(),
            event.dedupe_key,
            now,
            event.kind.value,
            event.event_name,
            "pending" if self.sinks else "stored",
            event.key,
            event.order_id,
            event.shipment_id,
            event.purchase_order_number,
            event.shipment_number,
            event.message_id,
            event.last_updated_at,
            updated_micros(event.last_updated_at),
            event.content_type,
            headers_json(event.headers),
            event.body,
        )
        if self.book_with_event:
            write = event.book_write()
            if write is not None and write.folds:
                return Bulk(
                    _INSERT_EVENT_AND_BOOK,
                    (*params, *write.with_event_params(now)),
                    partial(self._stored, params=params, event=event, booked=True),
                )
            if isinstance(event.book, str):  # read from the body once, here
                event = replace(event, book=write)
        return Bulk(INSERT_EVENT, params, partial(self._stored, params=params, event=event))

    @property
    def wakes(self) -> bool:
        """A store makes deliveries due now (dispatchers of every process are woken)."""
        return bool(self.sinks) and not self.hold_new

    async def _stored(
        self, tx: Tx, row: Row | None, *, params: tuple[Any, ...], event: NewEvent, booked: bool = False
    ) -> StoreResult:
        if row is None:
            existing = await tx.one(_EXISTING, (params[1],))
            if existing is None:  # the row we collided with was deleted (pruned) meanwhile
                raise StoreUnavailable("event store unavailable: a concurrent prune removed the event")
            return StoreResult(event_id=existing[0], seq=existing[1], duplicate=True)
        seq: int = row[0]
        if self.sinks:
            key, now = params[6], params[2]
            next_at = None if self.hold_new else now
            await tx.send(_INSERT_DELIVERIES, (seq, key, next_at, key, now, tx.dialect.array(self.sinks)))
        for hook in ON_STORED:
            if not (booked and hook is keep_book):
                await hook(tx, seq, event)
        return StoreResult(event_id=params[0], seq=seq, duplicate=False)

    async def reprocess(self, tx: Tx, quarantine_id: str, event: NewEvent, now: float) -> StoreResult:
        """Store ``event`` and mark the quarantine entry it came from, in one transaction."""
        if await tx.one("SELECT 1 FROM quarantine WHERE id = ? /*pg FOR UPDATE */", (quarantine_id,)) is None:
            raise EventNotFound(f"no quarantine entry {quarantine_id}")
        result: StoreResult = await self.store(event, now)(tx)
        await tx.send("UPDATE quarantine SET reprocessed_event_id = ? WHERE id = ?", (result.event_id, quarantine_id))
        return result


async def quarantine(
    tx: Tx,
    *,
    route: str,
    content_type: str,
    body: bytes,
    headers: Mapping[str, str],
    reason: str,
    status_code: int,
    now: float,
) -> str:
    qid = new_id()
    await tx.send(_INSERT_QUARANTINE, (qid, now, route, content_type, reason, status_code, headers_json(headers), body))
    return qid


async def delete_quarantined(tx: Tx, quarantine_id: str) -> None:
    if not await tx.run("DELETE FROM quarantine WHERE id = ?", (quarantine_id,)):
        raise EventNotFound(f"no quarantine entry {quarantine_id}")


async def prune(tx: Tx, before: float, limit: int) -> int:
    """Delete up to ``limit`` settled events with every row that belongs to them."""
    seqs = [row[0] for row in await tx.all(_PRUNABLE, (before, before, limit))]
    if seqs:
        await book.detach(tx, seqs)  # what the order book still reads from them is kept first
        listed = tx.dialect.array(seqs)
        for table, column in children("events"):
            await tx.send(f"DELETE FROM {table} WHERE {column} IN INTS(?)", (listed,))  # noqa: S608
        await tx.send("DELETE FROM events WHERE seq IN INTS(?)", (listed,))
    return len(seqs)
