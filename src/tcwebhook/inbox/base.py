"""The inbox interface: durable events, the quarantine of rejected bodies, delivery state.

The HTTP layer and the dispatcher talk only to ``Inbox``; ``inbox.sqlite`` implements it and a
PostgreSQL implementation can sit beside it without touching either caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from tcwebhook.contract.kinds import EventKind


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An accepted webhook call, ready to be stored byte-for-byte."""

    kind: EventKind
    event_name: str
    dedupe_key: str  # meta.messageId, else "sha256:<hex of body>"; unique per event
    content_type: str
    body: bytes
    key: str | None = None  # per-key FIFO key, see contract.kinds.routing_key
    order_id: str | None = None
    shipment_id: str | None = None
    purchase_order_number: str | None = None
    shipment_number: str | None = None
    message_id: str | None = None
    last_updated_at: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # already redacted


@dataclass(frozen=True, slots=True)
class StoreResult:
    event_id: str  # stable id sinks can dedupe on
    seq: int  # arrival order
    duplicate: bool  # True: an event with the same dedupe_key was already stored


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the inbox holds it (the typed body is parsed on demand by the contract)."""

    seq: int
    event_id: str
    received_at: datetime
    kind: EventKind
    event_name: str
    dedupe_key: str
    content_type: str
    body: bytes
    key: str | None
    order_id: str | None
    shipment_id: str | None
    purchase_order_number: str | None
    shipment_number: str | None
    message_id: str | None
    last_updated_at: str | None
    headers: Mapping[str, str]
    status: str  # pending | delivered | dead | superseded (aggregate over sinks)


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    id: str
    received_at: datetime
    route: str  # "orders" | "shipments"
    content_type: str
    body: bytes
    headers: Mapping[str, str]
    reason: str
    status_code: int
    reprocessed_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class EventFilter:
    status: str | None = None
    kind: EventKind | None = None
    event_name: str | None = None  # glob
    number: str | None = None  # order id, shipment id, purchase order or shipment number
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


@runtime_checkable
class Inbox(Protocol):
    """What the receiver and the CLI need from a store."""

    async def open(self) -> None:
        """Connect and apply schema migrations; raises StartupError when impossible."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot take writes."""

    async def store(self, event: NewEvent) -> StoreResult:
        """Commit durably (fsync'd) before returning; raise StoreUnavailable on any failure."""

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
        """Keep a rejected body for recovery; returns the quarantine id."""

    async def get_event(self, event_id: str) -> StoredEvent: ...

    async def list_events(self, flt: EventFilter) -> Sequence[StoredEvent]: ...

    async def get_quarantined(self, quarantine_id: str) -> QuarantineEntry: ...

    async def list_quarantined(self, limit: int = 100) -> Sequence[QuarantineEntry]: ...
