"""The console's sessions: one row per signed-in browser, keyed by the SHA-256 of its token."""

from __future__ import annotations

from tcwebhook.inbox.tx import Tx


async def put(tx: Tx, digest: str, username: str, role: str, csrf: str, now: float) -> None:
    await tx.send(
        "INSERT INTO console_sessions (token_hash, username, role, csrf, created, last_seen) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (digest, username, role, csrf, now, now),
    )


async def get(tx: Tx, digest: str) -> tuple[str, str, str, float, float] | None:
    row = await tx.one(
        "SELECT username, role, csrf, created, last_seen FROM console_sessions WHERE token_hash = ?", (digest,)
    )
    if row is None:
        return None
    return str(row[0]), str(row[1]), str(row[2]), float(row[3]), float(row[4])


async def touch(tx: Tx, digest: str, now: float) -> None:
    await tx.send(
        "UPDATE console_sessions SET last_seen = ? WHERE token_hash = ? AND last_seen < ?", (now, digest, now)
    )


async def end(tx: Tx, digest: str) -> None:
    await tx.send("DELETE FROM console_sessions WHERE token_hash = ?", (digest,))


async def sweep(tx: Tx, idle_before: float) -> int:
    return await tx.run("DELETE FROM console_sessions WHERE last_seen < ?", (idle_before,))
