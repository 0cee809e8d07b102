"""The inbox interface: durable events, the quarantine of rejected bodies, delivery state.

Each consumer is typed with the role it uses: the receiver with ``Intake``, the dispatcher with
``DeliveryQueue``, the metrics with ``Browser``, reconciliation with ``Reconciling``; the CLI and
the console with the whole ``Inbox`` (all roles). ``inbox.sqlite`` (one file, one machine) and
``inbox.postgres`` (one database, any number of processes and machines) implement it over the
rules of ``inbox.core``, and ``inbox.factory`` picks one from the ``[store] url``.

Delivery state: storing an event creates, in the same transaction, one *delivery* per sink the
inbox was opened with. A delivery is ``pending`` until a dispatcher settles it as ``delivered``,
``dead`` (permanent failure or give-up), ``superseded`` (a newer state of its key was already
delivered), ``skipped`` (the sink's filter does not select the event) or ``unrecognised`` (an
event of kind ``unknown``, held for a sink without ``accept_unknown`` until a replay by a version
that knows its event object). A dispatcher *claims* a
pending delivery with a lease; a lease that runs out (the claimant died) makes it claimable again,
so an event is delivered at least once and never lost. An event's ``status`` sums up its
deliveries; ``stored`` means there is nothing to deliver (no sink was configured, or none selects
it).

Reconciliation (``tcwebhook reconcile``) adds little: events it stores carry ``reconciled`` (kept
beside the event and found with ``EventFilter(reconciled=True)``), ``key_updates`` tells what is
stored per order or shipment without reading bodies, and named *state* values and *leases* hold
its high-water marks and make sure one process per store runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from tcwebhook.audit import AuditStore
from tcwebhook.contract.drift import Finding
from tcwebhook.contract.kinds import EventKind
from tcwebhook.orderbook.store import BookStore

if TYPE_CHECKING:
    from tcwebhook.contract.parse import ParsedWebhook
    from tcwebhook.orderbook.sql import BookWrite

BOOK_FROM_BODY = "from body"
"""``NewEvent.book`` default: the store reads the order-book write from the body itself."""


class EventStatus(StrEnum):
    """An event's status, summed up over its deliveries."""

    PENDING = "pending"  # some sink still has to get it
    DELIVERED = "delivered"  # every selecting sink has it
    DEAD = "dead"  # some sink gave up (dead-letter); replay re-queues it
    SUPERSEDED = "superseded"  # a newer state of its key was delivered instead
    STORED = "stored"  # kept, with nothing to deliver (no sink configured or selecting it)
    # Kind unknown, and some sink (or every sink) does not accept that: held, never pruned, until
    # a replay reads the body again with a version that knows its event object.
    UNRECOGNISED = "unrecognised"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    SUPERSEDED = "superseded"
    SKIPPED = "skipped"  # the sink's events filter does not select this event
    UNRECOGNISED = "unrecognised"  # kind unknown and the sink has no accept_unknown: held


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"
    PERMANENT = "permanent"  # the sink said retrying cannot succeed
    TRANSIENT = "transient"  # failed; retried later (or dead when the give-up rule says so)
    SUPERSEDED = "superseded"  # not attempted: older than a state already delivered
    ABANDONED = "abandoned"  # the claimant's lease ran out (it crashed or hung)
    RELEASED = "released"  # cut short by a shutdown; not counted as an attempt


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
    reconciled: bool = False  # stored by reconciliation (a change the webhooks never brought)
    # What the event writes to the order book (from the receiver's parse, worked out when the
    # event is stored: a duplicate never needs it); None: nothing.
    book: BookWrite | str | Callable[[], BookWrite | None] | None = field(
        default=BOOK_FROM_BODY, compare=False, repr=False
    )

    def book_write(self) -> BookWrite | None:
        """The order-book write stored with this event (read from the body unless given)."""
        if callable(self.book):
            return self.book()
        if not isinstance(self.book, str):
            return self.book
        from tcwebhook.orderbook.updates import write_of_body

        return write_of_body(self.kind, self.content_type, self.body)
    trace_context: str | None = None  # W3C traceparent of the request that stored it (tracing on)
    # What the models did not know, recorded with the event; a callable (the receiver's lazy
    # walk) is called only when the event is stored, not for a duplicate.
    drift: tuple[Finding, ...] | Callable[[], tuple[Finding, ...]] = field(default=(), compare=False)

    def findings(self) -> tuple[Finding, ...]:
        """What the models did not know about this event (``drift``, worked out if need be)."""
        return self.drift if isinstance(self.drift, tuple) else self.drift()

    @classmethod
    def from_parsed(
        cls, parsed: ParsedWebhook, *, content_type: str, body: bytes, headers: Mapping[str, str]
    ) -> NewEvent:
        """The event to store for a body the contract parser accepted."""
        from tcwebhook.orderbook.updates import write_of_envelope

        return cls(
            kind=parsed.kind,
            event_name=parsed.event_name,
            dedupe_key=parsed.dedupe_key,
            content_type=content_type,
            body=body,
            key=parsed.routing_key,
            order_id=parsed.order_id,
            shipment_id=parsed.shipment_id,
            purchase_order_number=parsed.purchase_order_number,
            shipment_number=parsed.shipment_number,
            message_id=parsed.message_id,
            last_updated_at=parsed.last_updated_at,
            headers=headers,
            book=_Once(write_of_envelope, parsed.kind, parsed.envelope),
            drift=parsed.drift if parsed.findings is None else parsed.findings,
        )


_T = TypeVar("_T")


class _Once(Generic[_T]):
    """``fn(*args)``, worked out on the first call and kept (a duplicate never calls it).

    Made for every request, so not ``functools.cache`` over a ``partial``: building that wrapper
    took ≈ 6 µs, this ≈ 0.4 µs. Two threads calling at once both work it out: harmless, no lock.
    """

    __slots__ = ("_args", "_done", "_fn", "_value")

    def __init__(self, fn: Callable[..., _T], *args: Any) -> None:
        self._fn = fn
        self._args = args
        self._done = False
        self._value: _T | None = None

    def __call__(self) -> _T:
        if not self._done:
            self._value = self._fn(*self._args)
            self._done = True
        return self._value  # type: ignore[return-value]


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
    status: str  # an EventStatus value (summed up over the deliveries)


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
class Delivery:
    """The state of one event for one sink."""

    sink: str
    status: str  # a DeliveryStatus value
    attempts: int
    next_attempt_at: datetime | None  # None while pending: waiting for the sender to resend (sync)
    claim_owner: str | None
    claim_expires: datetime | None
    last_error: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    sink: str
    number: int  # 1-based attempt number of that sink's delivery
    started_at: datetime
    duration: float  # seconds
    outcome: str  # an AttemptOutcome value
    error: str | None


@dataclass(frozen=True, slots=True)
class Claim:
    """A pending delivery leased to ``owner`` until the lease runs out or it is finished."""

    event: StoredEvent
    sink: str
    attempt: int  # number of this attempt since the delivery was stored or replayed, 1-based
    owner: str
    replayed: bool = False  # re-queued by a replay (its latency says nothing about the pipeline)


@dataclass(frozen=True, slots=True)
class EventClaim:
    """What claiming one given event (synchronous delivery) found."""

    event: StoredEvent
    claims: tuple[Claim, ...]
    waiting: tuple[str, ...]  # sinks whose delivery is in flight elsewhere or behind an earlier event
    statuses: Mapping[str, str]  # sink -> DeliveryStatus of the deliveries not claimed


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How a claimed delivery ends: the dispatcher decides, the inbox records."""

    status: DeliveryStatus
    outcome: AttemptOutcome | None  # None: nothing was attempted (skipped), no attempt row
    started_at: float  # epoch seconds
    duration: float = 0.0
    error: str | None = None
    next_attempt_at: float | None = None  # epoch seconds; pending only (None = wait for a resend)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    requeued: int  # deliveries made pending again
    events: int  # events touched
    missing: tuple[str, ...] = ()  # ids not found
    reclassified: int = 0  # events of kind unknown that this version's models now know


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What ``tcwebhook db status`` shows about a store."""

    engine: str  # "sqlite" | "postgresql"
    location: str  # the file, or the URL without its password
    schema_version: int
    schema_found: int  # the version this process found before migrating it
    rows: Mapping[str, int]  # table -> row count
    events: Mapping[str, int]  # event status -> count


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a listing returns; every field given must match.

    ``sink`` keeps the events that have a delivery for that sink, and then ``status`` is the
    status of *that delivery* (a ``DeliveryStatus`` value) instead of the event's summed-up one:
    ``sink="erp", status="dead"`` are the dead letters of ``erp``.
    ``before_seq`` pages newest-first listings by keyset: only events with a smaller ``seq``.
    """

    status: str | None = None
    kind: EventKind | None = None
    event_name: str | None = None  # glob
    number: str | None = None  # order id, shipment id, purchase order or shipment number
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    sink: str | None = None
    search: str | None = None  # like ``number``, and a message id (meta.messageId) too
    before_seq: int | None = None
    reconciled: bool | None = None  # True: only events stored by reconciliation


@dataclass(frozen=True, slots=True)
class SinkHealth:
    """What the console and the metrics show about one sink's deliveries."""

    sink: str
    backlog: int  # pending deliveries
    oldest_pending_at: datetime | None  # when the oldest pending event was received
    dead: int  # dead deliveries (dead letters)
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class KeyUpdate:
    """What one stored event says about its order or shipment (no body)."""

    key: str
    kind: EventKind
    event_id: str
    received_at: datetime
    last_updated_at: str | None


class Intake(Protocol):
    """What the receiver needs: keep what arrives, durably, before it answers."""

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

    async def reprocess_quarantined(self, quarantine_id: str, event: NewEvent) -> StoreResult:
        """Store ``event`` (parsed again from the entry) and mark the entry reprocessed, atomically."""

    async def delete_quarantined(self, quarantine_id: str) -> None:
        """Delete a quarantine entry (a body that is junk); EventNotFound when there is none."""


class DeliveryQueue(Protocol):
    """What a dispatcher needs: due deliveries under a lease, their outcome, retention."""

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when any process commits deliveries that are due now.

        A hint to wake a dispatcher early; a store that cannot tell (SQLite: other processes)
        never calls it, and dispatchers poll anyway.
        """

    async def claim_due(
        self,
        *,
        owner: str,
        sinks: Sequence[str],
        limit: int,
        lease: float,
        stale_kinds: frozenset[EventKind],
    ) -> Sequence[Claim]:
        """Lease up to ``limit`` due deliveries, each the oldest pending one of its (sink, key).

        Deliveries of ``stale_kinds`` older (``last_updated_at``) than a state already delivered
        for the same sink and key are settled as superseded instead of being returned.
        """

    async def claim_event(
        self,
        event_id: str,
        *,
        owner: str,
        sinks: Sequence[str],
        lease: float,
        stale_kinds: frozenset[EventKind],
    ) -> EventClaim:
        """Lease the pending deliveries of one event now, due or not (synchronous delivery)."""

    async def finish(self, claim: Claim, result: AttemptResult) -> bool:
        """Record the attempt and settle the delivery; False when the claim was no longer held."""

    async def finish_many(self, settles: Sequence[tuple[Claim, AttemptResult]]) -> list[bool]:
        """``finish`` for each, all in one transaction (a dispatcher's batch); held, in order."""

    async def extend_leases(self, claims: Sequence[Claim], lease: float) -> None: ...

    async def trace_context(self, seq: int) -> str | None:
        """The W3C ``traceparent`` of the request that stored event ``seq``, if it was traced."""

    async def replay(
        self,
        event_ids: Sequence[str],
        *,
        only_dead: bool = False,
        force: bool = False,
        sink: str | None = None,
        only_unrecognised: bool = False,
    ) -> ReplayResult:
        """Make deliveries pending again (and create them for sinks configured since).

        ``only_dead`` re-queues dead deliveries only, ``only_unrecognised`` unrecognised ones only;
        ``force`` also skips the stale check once; ``sink`` touches that sink's deliveries only (and
        creates none for other sinks). An event of kind ``unknown`` is first read again with this
        version's models: one they know now takes its kind, ids and key (``reclassified``).
        """

    async def pending_sinks(self) -> Sequence[str]:
        """Sink names that have pending deliveries (to spot sinks removed from the config)."""

    def retention(self) -> float | None:
        """``[store] retention`` in seconds: the dispatcher prunes events settled longer ago."""

    async def prune(self, before: float, limit: int = 500) -> int:
        """Delete up to ``limit`` events delivered (or superseded) before ``before`` (epoch
        seconds), with their deliveries and attempts; never a pending, dead or only stored one.
        Returns how many were deleted: call again while it returns ``limit``."""

    def audit_retention(self) -> float | None:
        """``[store] audit_retention`` in seconds: the dispatcher expires older audit entries."""

    async def expire_audit(self, before: float) -> int:
        """Delete audit entries older than ``before``, keeping the chain verifiable from its anchor."""


@dataclass(frozen=True, slots=True)
class DriftRecord:
    """One thing the models did not know, as the drift report shows it."""

    what: str  # field, enum_value, event_name, event_key, number_as_text
    detail: str
    count: int  # events that carried it
    first_event_id: str | None
    last_event_id: str | None
    first_seen: datetime
    last_seen: datetime


class DriftReport(Protocol):
    """The contract-drift report's read side (``tcwebhook contract drift``)."""

    async def contract_drift(self, since: datetime) -> Sequence[DriftRecord]:
        """Everything last seen at or after ``since``, by kind, most recent first."""


class Browser(Protocol):
    """The read side, for the CLI, the console and the metrics."""

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot take writes."""

    async def get_event(self, event_id: str) -> StoredEvent: ...

    async def list_events(self, flt: EventFilter) -> Sequence[StoredEvent]:
        """The matching events, newest first (``flt.limit`` of them at most)."""

    async def list_event_ids(self, flt: EventFilter) -> Sequence[str]:
        """Ids of the matching events, oldest first (``flt.limit`` of them at most)."""

    async def event_ids_starting(self, prefix: str, limit: int = 2) -> Sequence[str]:
        """Ids of the events whose id starts with ``prefix``, in id order (``limit`` at most)."""

    async def deliveries(self, event_id: str) -> Sequence[Delivery]: ...

    async def attempts(self, event_id: str) -> Sequence[Attempt]: ...

    async def get_quarantined(self, quarantine_id: str) -> QuarantineEntry: ...

    async def list_quarantined(self, limit: int = 100) -> Sequence[QuarantineEntry]: ...

    async def count_by_status(self) -> Mapping[str, int]:
        """Events per ``EventStatus`` value (every value present, zeros too), and under
        ``"quarantined"`` the quarantine entries not reprocessed yet."""

    async def sink_health(self, sinks: Sequence[str]) -> Sequence[SinkHealth]:
        """One entry per name in ``sinks`` and per other sink with pending or dead deliveries,
        sorted by name."""

    async def arrivals(self, since: datetime, bucket_seconds: int) -> Sequence[tuple[datetime, int]]:
        """Events received since ``since`` counted per bucket (bucket start, count), oldest first;
        empty buckets are left out."""

    async def describe(self) -> StoreInfo:
        """Schema version and row counts (``tcwebhook db status``)."""


class ReconcileState(Protocol):
    """Reconciliation's own state: what is stored per key, high-water marks, leases."""

    async def key_updates(self, keys: Sequence[str]) -> Sequence[KeyUpdate]:
        """Every stored event of the given routing keys (``order:<id>``, ``shipment:<id>``)."""

    async def get_state(self, name: str) -> str | None:
        """A named value kept in the store (a reconciliation high-water mark), or None."""

    async def set_state(self, name: str, value: str) -> None: ...

    async def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take or renew the named lease for ``seconds``; False while another owner holds it."""

    async def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it."""


class Reconciling(Intake, Browser, ReconcileState, Protocol):
    """What a reconciliation run uses: it stores the changes it finds, reads stored bodies to
    compare, and keeps its marks and leases."""


@runtime_checkable
class ConsoleSessions(Protocol):
    """The operator console's sessions, shared by every process on the store; keys are token digests."""

    async def put_session(self, digest: str, username: str, role: str, csrf: str, now: float) -> None: ...

    async def get_session(self, digest: str) -> tuple[str, str, str, float, float] | None:
        """(username, role, csrf token, created, last seen), or None."""

    async def touch_session(self, digest: str, now: float) -> None: ...

    async def end_session(self, digest: str) -> None: ...

    async def sweep_sessions(self, idle_before: float) -> int:
        """Delete the sessions not used since ``idle_before``; how many."""


class Inbox(
    Intake, DeliveryQueue, Browser, ReconcileState, DriftReport, AuditStore, ConsoleSessions, BookStore, Protocol
):
    """A whole store: every role, and its life cycle."""

    async def open(self) -> None:
        """Connect and apply schema migrations; raises StartupError when impossible."""

    async def close(self) -> None: ...
