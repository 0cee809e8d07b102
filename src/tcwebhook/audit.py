"""The operators' audit log: who did what to which events, and whether anyone edited the record.

Every entry's SHA-256 covers the previous entry's hash and its own fields (``entry_hash``), so
changing, inserting or deleting a row breaks the chain from that row on, and ``verify`` names
the first entry that does not hold. Entries are appended in the store's own transaction (one
writer at a time: SQLite's write lock, an advisory lock on PostgreSQL), so two processes never
fork the chain. ``expire_audit`` deletes the oldest entries and keeps the hash of the last one
deleted as the chain's new start; the dispatcher calls it for ``[store] audit_retention``
(unset: entries are kept for ever).

Secrets never enter an entry: callers pass names, ids and counts, and ``detail`` is scrubbed of
the configured secrets before it is hashed.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import structlog

log = structlog.get_logger(__name__)

GENESIS = "0" * 64  # the previous hash of the first entry ever written


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator action, as its caller describes it."""

    actor: str  # the console user, or the OS user of a CLI command
    source: str  # the client address (console) or "cli@<host>"
    action: str  # e.g. console.login, events.replay, db.prune
    target: str = ""  # what it acted on: event ids, a sink, a store
    outcome: str = "ok"  # ok | failed | refused
    detail: Mapping[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An entry as the store holds it."""

    seq: int
    at: float
    actor: str
    source: str
    action: str
    target: str
    outcome: str
    detail: str  # canonical JSON
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "source": self.source,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "detail": orjson.loads(self.detail) if self.detail else {},
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first entry whose hash does not follow from the entries before it."""

    seq: int
    reason: str


class AuditStore(Protocol):
    """The store's side of the audit log (every inbox has it)."""

    async def append_audit(self, entry: AuditEntry, detail: str) -> int:
        """Append ``entry`` (``detail`` as canonical JSON) to the chain; its seq."""

    async def audit_entries(
        self, *, after: int = 0, limit: int = 1000, since: float | None = None, actor: str | None = None
    ) -> Sequence[AuditRecord]:
        """Entries in chain order, from seq ``after`` on."""

    async def audit_anchor(self) -> tuple[int, str]:
        """(seq, hash) of the last entry deleted by retention, or (0, GENESIS)."""

    async def expire_audit(self, before: float) -> int:
        """Delete the entries older than ``before`` (epoch seconds), keeping the chain verifiable."""


def canonical_detail(detail: Mapping[str, Any], secrets: Sequence[str] = ()) -> str:
    text = orjson.dumps(dict(detail), option=orjson.OPT_SORT_KEYS, default=str).decode()
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def entry_hash(prev_hash: str, at: float, actor: str, source: str, action: str, target: str, outcome: str,
               detail: str) -> str:
    """SHA-256 over the previous hash and the entry's fields, in a fixed, unambiguous encoding."""
    material = orjson.dumps([prev_hash, repr(float(at)), actor, source, action, target, outcome, detail])
    return hashlib.sha256(material).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    checked: int  # entries whose hash held
    last_seq: int  # the last of them (or the anchor's)
    broken: ChainBreak | None


async def verify(store: AuditStore, page: int = 1000) -> ChainReport:
    """Walk the chain from its anchor; the first entry that does not hold, if any."""
    last_seq, prev = await store.audit_anchor()
    checked = 0
    while True:
        records = await store.audit_entries(after=last_seq, limit=page)
        for r in records:
            if r.prev_hash != prev:
                reason = "its previous hash is not the hash of the entry before it (an entry was deleted or inserted)"
                return ChainReport(checked, last_seq, ChainBreak(r.seq, reason))
            expected = entry_hash(prev, r.at, r.actor, r.source, r.action, r.target, r.outcome, r.detail)
            if expected != r.hash:
                reason = "its fields do not match its hash (the entry was edited)"
                return ChainReport(checked, last_seq, ChainBreak(r.seq, reason))
            prev, last_seq = r.hash, r.seq
            checked += 1
        if len(records) < page:
            return ChainReport(checked, last_seq, None)


class AuditLog:
    """Appends entries for one process; a failure to record is logged, never raised to the action."""

    def __init__(self, store: AuditStore, secrets: Sequence[str] = ()) -> None:
        self._store = store
        self._secrets = tuple(s for s in secrets if s)

    async def record(self, entry: AuditEntry) -> None:
        try:
            await self._store.append_audit(entry, canonical_detail(entry.detail, self._secrets))
        except Exception as exc:  # the action happened: say loudly that its record is missing
            log.error("audit_not_recorded", action=entry.action, actor=entry.actor, error=str(exc))


def cli_actor() -> tuple[str, str]:
    """(actor, source) of a CLI command: the OS user and this host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid:{os.getuid()}"
    return user, f"cli@{socket.gethostname()}"


def cli_entry(action: str, target: str = "", outcome: str = "ok", **detail: Any) -> AuditEntry:
    actor, source = cli_actor()
    return AuditEntry(actor=actor, source=source, action=action, target=target, outcome=outcome, detail=detail)
