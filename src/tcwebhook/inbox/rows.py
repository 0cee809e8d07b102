"""SQL column lists, the conversion of rows (either engine's) into inbox records, listings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox.base import Attempt, Delivery, EventFilter, QuarantineEntry, StoredEvent
from tcwebhook.inbox.ids import to_datetime

EVENT_COLUMNS = (
    "seq, event_id, received_at, kind, event_name, dedupe_key, content_type, body, key, order_id,"
    " shipment_id, purchase_order_number, shipment_number, message_id, last_updated_at, headers,"
    " status"
)
# The same, qualified for a query that joins the deliveries as ``d`` and the events as ``e``.
EVENT_COLUMNS_E = ", ".join(f"e.{name.strip()}" for name in EVENT_COLUMNS.split(","))
DELIVERY_COLUMNS = (
    "sink, status, attempts, next_attempt_at, claim_owner, claim_expires, last_error, updated_at"
)
ATTEMPT_COLUMNS = "sink, number, started_at, duration, outcome, error"
QUARANTINE_COLUMNS = (
    "id, received_at, route, content_type, body, headers, reason, status_code, reprocessed_event_id"
)

_KINDS = {k.value: k for k in EventKind}
SEQ_SLACK = 600.0  # seconds; see filter_clause


def _headers(raw: bytes | str) -> dict[str, str]:
    loaded = orjson.loads(raw)
    return loaded if isinstance(loaded, dict) else {}


def event_from_row(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(
        seq=row[0],
        event_id=row[1],
        received_at=to_datetime(row[2]),
        kind=_KINDS[row[3]],
        event_name=row[4],
        dedupe_key=row[5],
        content_type=row[6],
        body=bytes(row[7]),
        key=row[8],
        order_id=row[9],
        shipment_id=row[10],
        purchase_order_number=row[11],
        shipment_number=row[12],
        message_id=row[13],
        last_updated_at=row[14],
        headers=_headers(row[15]),
        status=row[16],
    )


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    return Delivery(
        sink=row[0],
        status=row[1],
        attempts=row[2],
        next_attempt_at=None if row[3] is None else to_datetime(row[3]),
        claim_owner=row[4],
        claim_expires=None if row[5] is None else to_datetime(row[5]),
        last_error=row[6],
        updated_at=to_datetime(row[7]),
    )


def attempt_from_row(row: Sequence[Any]) -> Attempt:
    return Attempt(
        sink=row[0],
        number=row[1],
        started_at=to_datetime(row[2]),
        duration=row[3],
        outcome=row[4],
        error=row[5],
    )


def quarantine_from_row(row: Sequence[Any]) -> QuarantineEntry:
    return QuarantineEntry(
        id=row[0],
        received_at=to_datetime(row[1]),
        route=row[2],
        content_type=row[3],
        body=bytes(row[4]),
        headers=_headers(row[5]),
        reason=row[6],
        status_code=row[7],
        reprocessed_event_id=row[8],
    )


def glob_regex(pattern: str) -> str:
    """A glob as SQLite's GLOB reads it (``*``, ``?``, ``[...]``), as an anchored POSIX regex."""
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[" and (end := pattern.find("]", i + 2)) != -1:
            out.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(ch if ch.isalnum() or ch == "_" else "\\" + ch)
        i += 1
    out.append("$")
    return "".join(out)


def filter_clause(flt: EventFilter, prefix: str = "", *, postgres: bool = False) -> tuple[str, list[Any]]:
    """``WHERE …`` (or "") and its arguments for an event filter.

    ``prefix`` qualifies the events columns (``"e."``) when the query joins the deliveries; the
    ``sink`` filter itself is the caller's join (see ``listing``). ``postgres`` matches globs
    with a regex.
    """
    p = prefix
    where: list[str] = []
    args: list[Any] = []
    if flt.status and not flt.sink:
        where.append(f"{p}status = ?")
        args.append(str(flt.status))
    if flt.kind:
        where.append(f"{p}kind = ?")
        args.append(flt.kind.value)
    if flt.event_name:
        if postgres:
            where.append(f"{p}event_name ~ ?")
            args.append(glob_regex(flt.event_name))
        elif any(c in flt.event_name for c in "*?["):
            # Not through events_name: a common prefix ("Order*") would sort most of the table,
            # while walking in arrival order stops after one page.
            where.append(f"+{p}event_name GLOB ?")
            args.append(flt.event_name)
        else:
            where.append(f"{p}event_name = ?")
            args.append(flt.event_name)
    for value, message_id in ((flt.number, False), (flt.search, True)):
        if not value:
            continue
        # Order and shipment ids are found through the routing key, which is indexed; a message
        # id is the dedupe key (unique index).
        clause = (
            f"({p}key IN (?, ?, ?) OR {p}purchase_order_number = ? OR {p}shipment_number = ?"
            + (f" OR {p}dedupe_key = ?)" if message_id else ")")
        )
        where.append(clause)
        args.extend((f"order:{value}", f"shipment:{value}", f"order:legacy:{value}", value, value))
        if message_id:
            args.append(value)
    if flt.reconciled is not None:
        negate = "" if flt.reconciled else "NOT "
        where.append(f"{p}seq {negate}IN (SELECT seq FROM reconciled)")  # noqa: S608 - constants only
    # A time range also bounds ``seq`` (the listing's order), so the scan starts and stops at the
    # range instead of walking every newer event: the bounds are the sequence numbers of events
    # received SEQ_SLACK seconds outside the range, found through events_received. That holds
    # while an event commits (gets its seq) within SEQ_SLACK of its received_at, which a store
    # (a request waiting for its commit) always does; received_at itself is still checked, so the
    # bounds never add a row. (Constant SQL and "?" placeholders only: S608 does not apply.)
    if flt.since is not None:
        where.append(f"{p}received_at >= ?")
        where.append(
            f"{p}seq > coalesce((SELECT seq FROM events WHERE received_at < ?"  # noqa: S608
            " ORDER BY received_at DESC LIMIT 1), 0)"
        )
        args.extend((flt.since.timestamp(), flt.since.timestamp() - SEQ_SLACK))
    if flt.until is not None:
        where.append(f"{p}received_at < ?")
        where.append(
            f"{p}seq < coalesce((SELECT seq FROM events WHERE received_at >= ?"  # noqa: S608
            " ORDER BY received_at LIMIT 1), 9223372036854775807)"
        )
        args.extend((flt.until.timestamp(), flt.until.timestamp() + SEQ_SLACK))
    if flt.before_seq is not None:
        where.append(f"{p}seq < ?")
        args.append(flt.before_seq)
    return (" WHERE " + " AND ".join(where) if where else ""), args


def listing(flt: EventFilter, columns: str, *, newest_first: bool, postgres: bool = False) -> tuple[str, list[Any]]:
    """The SELECT of an event listing (its LIMIT value is the caller's last argument) and its
    arguments; ``postgres`` matches globs with a regex.

    With a ``sink`` the query walks that sink's deliveries in arrival order (index
    ``deliveries_sink``), so a sink's dead letters page as fast as the whole table does.
    """
    order = "DESC" if newest_first else "ASC"
    if flt.sink is None:
        where, args = filter_clause(flt, postgres=postgres)
        sql = f"SELECT {columns} FROM events{where} ORDER BY seq {order} LIMIT ?"  # noqa: S608
    else:
        where, args = filter_clause(flt, prefix="e.", postgres=postgres)
        clauses = ["d.sink = ?"]
        head: list[Any] = [flt.sink]
        if flt.status:
            clauses.append("d.status = ?")
            head.append(str(flt.status))
        if flt.before_seq is not None:
            clauses.append("d.seq < ?")
            head.append(flt.before_seq)
        joined = " AND ".join(clauses) + (" AND " + where.removeprefix(" WHERE ") if where else "")
        qualified = EVENT_COLUMNS_E if columns == EVENT_COLUMNS else f"e.{columns}"
        sql = (
            f"SELECT {qualified} FROM deliveries AS d JOIN events AS e ON e.seq = d.seq"  # noqa: S608
            f" WHERE {joined} ORDER BY d.seq {order} LIMIT ?"
        )
        args = [*head, *args]
    return sql, args
