"""Reconciliation's part of the store: what is stored per key, named values, leases."""

from __future__ import annotations

from collections.abc import Sequence

from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox.base import KeyUpdate
from tcwebhook.inbox.ids import to_datetime
from tcwebhook.inbox.tx import Tx

_KINDS = {k.value: k for k in EventKind}
# Taken when free, held by the asker already, or run out.
_ACQUIRE = (
    "INSERT INTO service_state (name, owner, expires) VALUES (?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires"
    " WHERE service_state.owner IS NULL OR service_state.owner = excluded.owner"
    " OR service_state.expires < ? RETURNING owner"
)


async def key_updates(tx: Tx, keys: Sequence[str]) -> list[KeyUpdate]:
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return []
    rows = await tx.all(
        "SELECT key, kind, event_id, received_at, last_updated_at FROM events WHERE key IN TEXTS(?) ORDER BY seq",
        (tx.dialect.array(wanted),),
    )
    return [KeyUpdate(r[0], _KINDS[r[1]], r[2], to_datetime(r[3]), r[4]) for r in rows]


async def get_state(tx: Tx, name: str) -> str | None:
    row = await tx.one("SELECT value FROM service_state WHERE name = ?", (name,))
    return None if row is None else row[0]


async def set_state(tx: Tx, name: str, value: str) -> None:
    await tx.send(
        "INSERT INTO service_state (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


async def acquire_lease(tx: Tx, name: str, owner: str, seconds: float, now: float) -> bool:
    return await tx.one(_ACQUIRE, (name, owner, now + seconds, now)) is not None


async def release_lease(tx: Tx, name: str, owner: str) -> None:
    await tx.send("UPDATE service_state SET owner = NULL, expires = NULL WHERE name = ? AND owner = ?", (name, owner))
