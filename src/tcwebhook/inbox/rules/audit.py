"""The audit log's rules: append under one lock, read in chain order, retention with an anchor."""

from __future__ import annotations

from tcwebhook.audit import GENESIS, AuditEntry, AuditRecord, entry_hash
from tcwebhook.inbox.tx import Tx

_ANCHOR = "audit.anchor"  # service_state: "<seq> <hash>" of the last entry deleted
# PostgreSQL: appends from several processes queue on this transaction lock, so each reads the
# true last hash; SQLite's write transaction is already the only one.
_LOCK = "SELECT 1 /*pg , pg_advisory_xact_lock(7467832107) */"
_COLUMNS = "seq, at, actor, source, action, target, outcome, detail, prev_hash, hash"


async def append(tx: Tx, entry: AuditEntry, detail: str) -> int:
    await tx.one(_LOCK)
    row = await tx.one("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")
    if row is None:
        anchor = await tx.one("SELECT value FROM service_state WHERE name = ?", (_ANCHOR,))
        prev = str(anchor[0]).split(" ", 1)[1] if anchor is not None else GENESIS
    else:
        prev = str(row[0])
    digest = entry_hash(prev, entry.at, entry.actor, entry.source, entry.action, entry.target, entry.outcome, detail)
    found = await tx.one(
        "INSERT INTO audit (at, actor, source, action, target, outcome, detail, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        (entry.at, entry.actor, entry.source, entry.action, entry.target, entry.outcome, detail, prev, digest),
    )
    assert found is not None
    return int(found[0])


async def entries(
    tx: Tx, after: int, limit: int, since: float | None, actor: str | None
) -> list[AuditRecord]:
    sql = f"SELECT {_COLUMNS} FROM audit WHERE seq > ?"  # noqa: S608 - a constant column list
    params: list[object] = [after]
    if since is not None:
        sql += " AND at >= ?"
        params.append(since)
    if actor is not None:
        sql += " AND actor = ?"
        params.append(actor)
    rows = await tx.all(sql + " ORDER BY seq LIMIT ?", (*params, limit))
    return [
        AuditRecord(
            seq=int(r[0]), at=float(r[1]), actor=str(r[2]), source=str(r[3]), action=str(r[4]), target=str(r[5]),
            outcome=str(r[6]), detail=str(r[7] or ""), prev_hash=str(r[8]), hash=str(r[9]),
        )
        for r in rows
    ]


async def anchor(tx: Tx) -> tuple[int, str]:
    row = await tx.one("SELECT value FROM service_state WHERE name = ?", (_ANCHOR,))
    if row is None:
        return 0, GENESIS
    seq, digest = str(row[0]).split(" ", 1)
    return int(seq), digest


async def expire(tx: Tx, before: float) -> int:
    """Delete entries older than ``before``; the last one's hash becomes the chain's anchor."""
    await tx.one(_LOCK)
    last = await tx.one("SELECT seq, hash FROM audit WHERE at < ? ORDER BY seq DESC LIMIT 1", (before,))
    if last is None:
        return 0
    deleted = await tx.run("DELETE FROM audit WHERE seq <= ?", (last[0],))
    await tx.send(
        "INSERT INTO service_state (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (_ANCHOR, f"{last[0]} {last[1]}"),
    )
    return deleted
