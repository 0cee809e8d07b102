"""The contract-drift record: what the models did not know, counted as events are stored."""

from __future__ import annotations

from tcwebhook.inbox.base import DriftRecord, NewEvent
from tcwebhook.inbox.ids import to_datetime
from tcwebhook.inbox.tx import Tx

# The event's own id and arrival time, read in the statement itself: no round trip.
_RECORD = (
    "INSERT INTO contract_drift (what, detail, n, first_event_id, last_event_id, first_seen, last_seen)"
    " SELECT ?, ?, 1, e.event_id, e.event_id, e.received_at, e.received_at FROM events AS e WHERE e.seq = ?"
    " ON CONFLICT (what, detail) DO UPDATE SET n = contract_drift.n + 1,"
    " last_event_id = excluded.last_event_id, last_seen = excluded.last_seen"
)
_LIST = (
    "SELECT what, detail, n, first_event_id, last_event_id, first_seen, last_seen FROM contract_drift"
    " WHERE last_seen >= ? ORDER BY what, last_seen DESC, detail"
)


async def record_drift(tx: Tx, seq: int, event: NewEvent) -> None:
    """An ``ON_STORED`` hook: one upsert per finding, sent without waiting for an answer."""
    for finding in event.findings():
        await tx.send(_RECORD, (finding.what, finding.detail, seq))


async def list_drift(tx: Tx, since: float) -> list[DriftRecord]:
    rows = await tx.all(_LIST, (since,))
    return [
        DriftRecord(r[0], r[1], int(r[2]), r[3], r[4], to_datetime(r[5]), to_datetime(r[6])) for r in rows
    ]
