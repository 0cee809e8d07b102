"""``Inbox`` once for every store: each method is a rule of ``inbox.rules`` run by an engine.

An engine (``inbox.sqlite``, ``inbox.postgres``) says only how a rule meets its database:
``_write`` runs it in a write transaction (group-committed, durable when it returns), ``_read``
on a reading connection. Everything the rules decide is here and in ``inbox.rules``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from tcwebhook.audit import AuditEntry, AuditRecord
from tcwebhook.config import StoreSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox.base import (
    Attempt,
    AttemptResult,
    Claim,
    Delivery,
    DriftRecord,
    EventClaim,
    EventFilter,
    KeyUpdate,
    NewEvent,
    QuarantineEntry,
    ReplayResult,
    SinkHealth,
    StoredEvent,
    StoreInfo,
    StoreResult,
)
from tcwebhook.inbox.dialect import Dialect
from tcwebhook.inbox.rules import audit, book, delivery, drift, intake, reconcile, sessions, views
from tcwebhook.inbox.schema import SCHEMA_VERSION
from tcwebhook.inbox.tx import Bulk, Rule, Tx
from tcwebhook.orderbook.book import BookEntry, BookEvent
from tcwebhook.orderbook.sql import BookSummary, BookWrite

T = TypeVar("T")


class _Writer(Protocol):
    commits: int  # transactions committed by this process
    operations: int  # operations committed in them


def _at_run(fn: Callable[..., Any], **kwargs: Any) -> Rule[Any]:
    """The rule ``fn(tx, now=…, **kwargs)`` with ``now`` taken when it runs, not when queued:
    leases and due times are measured from the moment the transaction decides."""

    def rule(tx: Tx) -> Any:
        return fn(tx, now=time.time(), **kwargs)

    return rule


class SqlInbox(ABC):
    """The inbox on a SQL store; open it once per process, share it between tasks."""

    engine: str  # "sqlite" | "postgresql", as ``tcwebhook db status`` names it
    dialect: Dialect

    def __init__(self, settings: StoreSettings, *, sinks: Sequence[str], hold_new: bool) -> None:
        self._settings = settings
        self._intake = intake.EventIntake(tuple(sinks), hold_new, book_with_event=self.dialect.writes_in_with)
        self._schema_found = SCHEMA_VERSION
        self._writer: _Writer | None = None

    # -- what an engine provides -----------------------------------------------------------------

    @abstractmethod
    async def _write(self, rule: Rule[T] | Bulk, *, wakes: bool = False) -> T:
        """Run ``rule`` in a write transaction; return once it is committed.

        ``wakes``: it makes deliveries due now (PostgreSQL notifies every process at commit).
        """

    @abstractmethod
    async def _read(self, rule: Rule[T]) -> T: ...

    @abstractmethod
    async def _schema_version(self, tx: Tx) -> int: ...

    @property
    @abstractmethod
    def location(self) -> str:
        """The file, or the URL without its password."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None: ...

    @abstractmethod
    def subscribe(self, callback: Callable[[], None]) -> None: ...

    # -- settings --------------------------------------------------------------------------------

    def retention(self) -> float | None:
        return self._settings.retention

    def audit_retention(self) -> float | None:
        return self._settings.audit_retention

    @property
    def sinks(self) -> tuple[str, ...]:
        """The sink names new events get a delivery for."""
        return self._intake.sinks

    @property
    def commits(self) -> int:
        """Write transactions committed by this process (on SQLite, each is one fsync)."""
        return self._writer.commits if self._writer else 0

    @property
    def writes(self) -> int:
        """Write operations committed by this process."""
        return self._writer.operations if self._writer else 0

    # -- intake ----------------------------------------------------------------------------------

    async def store(self, event: NewEvent) -> StoreResult:
        result: StoreResult = await self._write(self._intake.store(event, time.time()), wakes=self._intake.wakes)
        return result

    async def quarantine(
        self,
        *,
        route: str,
        content_type: str,
        body: bytes,
        headers: Mapping[str, str],
        reason: str,
        status_code: int,
    ) -> str:
        return await self._write(
            partial(
                intake.quarantine,
                route=route,
                content_type=content_type,
                body=body,
                headers=headers,
                reason=reason,
                status_code=status_code,
                now=time.time(),
            )
        )

    async def reprocess_quarantined(self, quarantine_id: str, event: NewEvent) -> StoreResult:
        rule = partial(self._intake.reprocess, quarantine_id=quarantine_id, event=event, now=time.time())
        return await self._write(rule, wakes=self._intake.wakes)

    async def delete_quarantined(self, quarantine_id: str) -> None:
        await self._write(partial(intake.delete_quarantined, quarantine_id=quarantine_id))

    # -- browsing --------------------------------------------------------------------------------

    async def get_event(self, event_id: str) -> StoredEvent:
        return await self._read(partial(views.get_event, event_id=event_id))

    async def list_events(self, flt: EventFilter) -> Sequence[StoredEvent]:
        return await self._read(partial(views.list_events, flt=flt))

    async def list_event_ids(self, flt: EventFilter) -> Sequence[str]:
        return await self._read(partial(views.list_event_ids, flt=flt))

    async def event_ids_starting(self, prefix: str, limit: int = 2) -> Sequence[str]:
        return await self._read(partial(views.event_ids_starting, prefix=prefix, limit=limit))

    async def deliveries(self, event_id: str) -> Sequence[Delivery]:
        return await self._read(partial(views.deliveries, event_id=event_id))

    async def attempts(self, event_id: str) -> Sequence[Attempt]:
        return await self._read(partial(views.attempts, event_id=event_id))

    async def get_quarantined(self, quarantine_id: str) -> QuarantineEntry:
        return await self._read(partial(views.get_quarantined, quarantine_id=quarantine_id))

    async def list_quarantined(self, limit: int = 100) -> Sequence[QuarantineEntry]:
        return await self._read(partial(views.list_quarantined, limit=limit))

    async def pending_sinks(self) -> Sequence[str]:
        return await self._read(views.pending_sinks)

    async def count_by_status(self) -> Mapping[str, int]:
        return await self._read(views.count_by_status)

    async def sink_health(self, sinks: Sequence[str]) -> Sequence[SinkHealth]:
        return await self._read(partial(views.sink_health, sinks=tuple(sinks)))

    async def arrivals(self, since: datetime, bucket_seconds: int) -> Sequence[tuple[datetime, int]]:
        return await self._read(partial(views.arrivals, since=since, bucket_seconds=bucket_seconds))

    async def describe(self) -> StoreInfo:
        async def rule(tx: Tx) -> StoreInfo:
            version = await self._schema_version(tx)
            rows, events = await views.table_rows(tx), await views.event_statuses(tx)
            return StoreInfo(self.engine, self.location, version, self._schema_found, rows, events)

        return await self._read(rule)

    # -- the delivery queue ----------------------------------------------------------------------

    async def prune(self, before: float, limit: int = 500) -> int:
        return await self._write(partial(intake.prune, before=before, limit=limit))

    async def claim_due(
        self,
        *,
        owner: str,
        sinks: Sequence[str],
        limit: int,
        lease: float,
        stale_kinds: frozenset[EventKind],
    ) -> Sequence[Claim]:
        args: dict[str, Any] = {"owner": owner, "sinks": tuple(sinks), "lease": lease, "stale_kinds": stale_kinds}
        return await self._write(_at_run(delivery.claim_due, limit=limit, **args))

    async def claim_event(
        self,
        event_id: str,
        *,
        owner: str,
        sinks: Sequence[str],
        lease: float,
        stale_kinds: frozenset[EventKind],
    ) -> EventClaim:
        args: dict[str, Any] = {"owner": owner, "sinks": tuple(sinks), "lease": lease, "stale_kinds": stale_kinds}
        return await self._write(_at_run(delivery.claim_event, event_id=event_id, **args))

    async def finish(self, claim: Claim, result: AttemptResult) -> bool:
        return await self._write(_at_run(delivery.finish, claim=claim, result=result))

    async def finish_many(self, settles: Sequence[tuple[Claim, AttemptResult]]) -> list[bool]:
        if not settles:
            return []
        return await self._write(_at_run(delivery.finish_many, settles=tuple(settles)))

    # -- audit log -------------------------------------------------------------------------------

    async def append_audit(self, entry: AuditEntry, detail: str) -> int:
        return await self._write(partial(audit.append, entry=entry, detail=detail))

    async def audit_entries(
        self, *, after: int = 0, limit: int = 1000, since: float | None = None, actor: str | None = None
    ) -> Sequence[AuditRecord]:
        return await self._read(partial(audit.entries, after=after, limit=limit, since=since, actor=actor))

    async def audit_anchor(self) -> tuple[int, str]:
        return await self._read(audit.anchor)

    async def expire_audit(self, before: float) -> int:
        return await self._write(partial(audit.expire, before=before))

    # -- console sessions ------------------------------------------------------------------------

    async def put_session(self, digest: str, username: str, role: str, csrf: str, now: float) -> None:
        await self._write(partial(sessions.put, digest=digest, username=username, role=role, csrf=csrf, now=now))

    async def get_session(self, digest: str) -> tuple[str, str, str, float, float] | None:
        return await self._read(partial(sessions.get, digest=digest))

    async def touch_session(self, digest: str, now: float) -> None:
        await self._write(partial(sessions.touch, digest=digest, now=now))

    async def end_session(self, digest: str) -> None:
        await self._write(partial(sessions.end, digest=digest))

    async def sweep_sessions(self, idle_before: float) -> int:
        return await self._write(partial(sessions.sweep, idle_before=idle_before))

    async def trace_context(self, seq: int) -> str | None:
        return await self._read(partial(intake.trace_context, seq=seq))

    async def extend_leases(self, claims: Sequence[Claim], lease: float) -> None:
        held = tuple(claims)
        if held:
            await self._write(_at_run(delivery.extend_leases, claims=held, lease=lease))

    async def replay(
        self,
        event_ids: Sequence[str],
        *,
        only_dead: bool = False,
        force: bool = False,
        sink: str | None = None,
        only_unrecognised: bool = False,
    ) -> ReplayResult:
        return await self._write(
            _at_run(
                delivery.replay,
                event_ids=tuple(event_ids),
                sinks=self.sinks,
                only_dead=only_dead,
                force=force,
                sink=sink,
                only_unrecognised=only_unrecognised,
            )
        )

    # -- the order book ----------------------------------------------------------------------------

    async def book_entry(self, key: str) -> BookEntry | None:
        return await self._read(partial(book.entry, key=key))

    async def book_summaries(
        self, *, status: str | None = None, number: str | None = None, limit: int = 100
    ) -> Sequence[BookSummary]:
        return await self._read(partial(book.summaries, status=status, number=number, limit=limit))

    async def apply_to_book(self, write: BookWrite, event: BookEvent) -> None:
        # The same fetched state for the same event is kept once, however often it is retried.
        fetch_id = f"{event.event_id}/{write.header_stamp}"
        await self._write(partial(book.apply, write=write, event=event, fetch_id=fetch_id))

    # -- reconciliation state --------------------------------------------------------------------

    async def key_updates(self, keys: Sequence[str]) -> Sequence[KeyUpdate]:
        if not keys:
            return []
        return await self._read(partial(reconcile.key_updates, keys=tuple(keys)))

    async def contract_drift(self, since: datetime) -> Sequence[DriftRecord]:
        return await self._read(partial(drift.list_drift, since=since.timestamp()))

    async def get_state(self, name: str) -> str | None:
        return await self._read(partial(reconcile.get_state, name=name))

    async def set_state(self, name: str, value: str) -> None:
        await self._write(partial(reconcile.set_state, name=name, value=value))

    async def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        return await self._write(
            _at_run(reconcile.acquire_lease, name=name, owner=owner, seconds=seconds)
        )

    async def release_lease(self, name: str, owner: str) -> None:
        await self._write(partial(reconcile.release_lease, name=name, owner=owner))
