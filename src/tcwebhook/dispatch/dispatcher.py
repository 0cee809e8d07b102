"""The dispatcher: takes committed events from the inbox and delivers them to the sinks.

Background delivery (``start``/``stop``): a loop claims due deliveries — only the oldest pending
one of each (sink, key), so events of one order or shipment reach a sink in arrival order while
other keys flow in parallel, at most ``concurrency`` at a time. Each claim is leased; a heartbeat
renews the leases of deliveries still running, and a lease that runs out (the process was
killed) lets any dispatcher claim the delivery again: at-least-once, never lost. A failed attempt
is retried after an exponential, jittered, capped delay until the give-up rule dead-letters it;
every attempt is recorded.

A sink that takes batches (``BatchSink``: the files sink) is claimed for on its own, up to
``batch_size`` at once and one batch at a time (one large batch costs less per event than small
ones side by side: docs/performance.md), and settled in one transaction once it has returned: a
crash before that commit leaves them claimed, and their leases run out (at-least-once). A claim
takes only the head of each (sink, key), so a batch never holds two events of one key. While
the event loop is saturated the dispatcher pauses after each claim, so requests keep most of it.

Synchronous delivery (``deliver_now``, ``[delivery] mode = "sync"``): the request that stored an
event runs the sinks before it answers. New deliveries are held (``hold_new``) so the background
loop leaves them to the request. A transient failure is not retried by us: the delivery stays
pending but parked (no next attempt time) and the request answers 503, so Tradecloud resends.
The resend has the same messageId — a duplicate for the store — and the receiver calls
``deliver_now`` for duplicates too: a parked delivery is claimed and attempted again, a delivered
one answers "delivered" without a second delivery, a dead one "permanent".

An event of kind ``unknown`` (an event object this version does not know) goes only to the
sinks named in ``accept_unknown``, whatever their ``events`` filter; for every other sink the
delivery is settled ``unrecognised`` without an attempt, and is held until a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from functools import partial

import structlog
from opentelemetry.trace import Span, SpanKind

from tcwebhook.backoff import Backoff
from tcwebhook.config import DeliverySettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.dispatch.pacing import Pacer
from tcwebhook.dispatch.retention import keep_retention
from tcwebhook.dispatch.sync import SyncOutcome, SyncStatus
from tcwebhook.errors import PermanentError, StoreError
from tcwebhook.inbox.base import (
    AttemptOutcome,
    AttemptResult,
    Claim,
    DeliveryQueue,
    DeliveryStatus,
    StoreResult,
)
from tcwebhook.sinks.base import BatchSink, Sink
from tcwebhook.telemetry.tracing import Tracing, record_attempt

log = structlog.get_logger(__name__)

_ERROR_CHARS = 2000
# Recording an outcome while the store is busy: six tries within about 1.5 s, then the lease
# runs out and the delivery is attempted again (at-least-once).
_FINISH_BACKOFF = Backoff(initial=0.05, multiplier=2.0, cap=1.0, max_attempts=6)
_RELEASE_SECONDS = 2.0


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return described[:_ERROR_CHARS]


def delivery_backoff(settings: DeliverySettings) -> Backoff:
    """The back-off between delivery attempts, from the ``[delivery]`` settings."""
    return Backoff(
        initial=settings.initial_delay,
        multiplier=settings.multiplier,
        cap=settings.max_delay,
        jitter=settings.jitter,
        max_attempts=settings.max_attempts,
        max_age=settings.max_age,
    )


def default_owner() -> str:
    """A claim owner name unique to this dispatcher: host, process and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Dispatcher:
    """Delivers stored events to ``sinks``; owns the sinks (``stop`` closes them)."""

    def __init__(
        self,
        inbox: DeliveryQueue,
        sinks: Sequence[Sink],
        settings: DeliverySettings,
        *,
        owner: str | None = None,
        rng: random.Random | None = None,
        on_delivered: Callable[[Claim], None] | None = None,
        tracing: Tracing | None = None,
        accept_unknown: Iterable[str] = (),
    ) -> None:
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ValueError("sink names must be unique")
        self._inbox = inbox
        self._sinks = {s.name: s for s in sinks}
        self._names = tuple(names)
        self._accept_unknown = frozenset(accept_unknown)  # sink names with accept_unknown = true
        self._settings = settings
        self._backoff = delivery_backoff(settings)
        self._rng = rng or random.Random()
        self.owner = owner or default_owner()
        self._on_delivered = on_delivered  # metrics: commit-to-delivery latency
        self._tracing = tracing or Tracing.off()
        stale = {EventKind.SHIPMENT: settings.stale_shipments, EventKind.ORDER: settings.stale_orders}
        self._stale_kinds = frozenset(kind for kind, on in stale.items() if on)
        self._park = settings.mode == "sync"
        self._deadline = settings.sync_deadline
        self._overdue: set[asyncio.Task[tuple[AttemptResult, bool]]] = set()  # sync attempts stopped at the deadline
        self._wake = asyncio.Event()
        self._inflight: dict[tuple[int, str], Claim] = {}
        batching = [n for n, s in self._sinks.items() if isinstance(s, BatchSink) and s.batches]
        self._batching = () if self._tracing.enabled else tuple(batching)  # traced: a span each
        self._singles = tuple(n for n in names if n not in self._batching)
        self._batch_busy: set[str] = set()  # batching sinks with a batch in flight
        self._running = 0  # single deliveries in flight in background tasks
        self._pacer = Pacer()
        self._tasks: set[asyncio.Task[object]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False

    @property
    def sinks(self) -> tuple[str, ...]:
        return self._names

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background loop (and the lease heartbeat)."""
        if self._loop_task is not None:
            return
        self._stopping = False
        self._loop_task = asyncio.create_task(self._run(), name="tcwebhook-dispatch")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="tcwebhook-dispatch-leases")
        self._inbox.subscribe(self.notify)  # commits of other processes wake us (PostgreSQL)
        if self._inbox.retention() is not None or self._inbox.audit_retention() is not None:
            self._retention_task = asyncio.create_task(keep_retention(self._inbox), name="tcwebhook-retention")
        await self._warn_unknown_sinks()
        log.info("dispatcher_started", owner=self.owner, sinks=list(self._names), mode=self._settings.mode)

    def notify(self, stored: object = None) -> None:
        """Wake the loop: an event was stored (usable as the receiver's ``on_stored``)."""
        if isinstance(stored, StoreResult) and not self._park:  # sync mode: the request delivers it
            self._pacer.stored(len(self._names))
        self._wake.set()

    async def stop(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - a bound, not a deadline
        """Stop claiming; let in-flight deliveries finish within ``timeout``, release the rest.

        A released delivery is pending again at once and its attempt is not counted. Then the
        sinks are closed. Stop the HTTP server first (sync requests use the sinks too).
        """
        bound = self._settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + bound
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await asyncio.wait({self._loop_task}, timeout=bound)
        tasks = set(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0.0))
            for task in late:
                task.cancel()
            if late:
                log.warning("deliveries_released", count=len(late))
                # Each cancelled delivery writes its release: quick, but give it a moment.
                await asyncio.wait(late, timeout=_RELEASE_SECONDS)
        for helper in (self._loop_task, self._heartbeat_task, self._retention_task):
            if helper is not None and not helper.done():
                helper.cancel()
                await asyncio.wait({helper}, timeout=1.0)
        self._loop_task = self._heartbeat_task = self._retention_task = None
        if not self._closed:
            self._closed = True
            for sink in self._sinks.values():
                try:
                    await sink.close()
                except Exception:
                    log.exception("sink_close_failed", sink=sink.name)
        log.info("dispatcher_stopped", owner=self.owner)

    async def _warn_unknown_sinks(self) -> None:
        try:
            pending = await self._inbox.pending_sinks()
        except StoreError:
            return
        unknown = sorted(set(pending) - set(self._names))
        if unknown:
            log.warning(
                "pending_deliveries_for_unknown_sinks",
                sinks=unknown,
                hint="these sinks are no longer configured; their deliveries stay pending",
            )

    # -- background loop -----------------------------------------------------------------------

    def _claim_plan(self) -> list[tuple[tuple[str, ...], int]]:
        """What to claim now: (sinks, limit) for free slots and for each idle batching sink."""
        idle = [sink for sink in self._batching if sink not in self._batch_busy]
        plan: list[tuple[tuple[str, ...], int]] = [((sink,), self._settings.batch_size) for sink in idle]
        free = self._settings.concurrency - self._running
        if free > 0 and self._singles:
            plan.append((self._singles, free))
        return plan

    async def _claim(self, sinks: tuple[str, ...], limit: int) -> Sequence[Claim]:
        try:
            return await self._inbox.claim_due(
                owner=self.owner,
                sinks=sinks,
                limit=limit,
                lease=self._settings.lease_seconds,
                stale_kinds=self._stale_kinds,
            )
        except StoreError as exc:
            log.warning("claim_failed", error=str(exc))
        except Exception:
            log.exception("claim_failed")
        return []

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            claimed, full = 0, False
            for sinks, limit in self._claim_plan():
                claims = await self._claim(sinks, limit)
                with self._pacer.working():
                    self._spawn_all(claims)
                claimed += len(claims)
                full = full or len(claims) == limit
            self._pacer.claimed(claimed)
            if claimed:
                await self._pacer.yield_to_intake()
            if full:
                await asyncio.sleep(0)  # let the new deliveries start, then look for more
                continue
            if self._stopping:
                break
            try:
                async with asyncio.timeout(self._settings.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _spawn_all(self, claims: Sequence[Claim]) -> None:
        """One task per delivery, or per sink's batch where the sink takes batches."""
        batches: dict[str, list[Claim]] = {}
        for claim in claims:
            if claim.sink in self._batching:
                batches.setdefault(claim.sink, []).append(claim)
            else:
                self._spawn(self._attempt(claim, sync=False))
        for sink, group in batches.items():
            work = self._attempt(group[0], sync=False) if len(group) == 1 else self._attempt_batch(sink, group)
            self._spawn(work, batch=sink)

    def _spawn(self, work: Coroutine[object, object, object], *, batch: str | None = None) -> None:
        task: asyncio.Task[object] = asyncio.create_task(work)
        self._tasks.add(task)
        if batch is None:
            self._running += 1
        else:
            self._batch_busy.add(batch)
        task.add_done_callback(partial(self._done, batch=batch))

    def _done(self, task: asyncio.Task[object], *, batch: str | None) -> None:
        self._tasks.discard(task)
        if batch is None:
            self._running -= 1
        else:
            self._batch_busy.discard(batch)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery_task_failed", error=_describe(task.exception() or Exception()))
        self._wake.set()  # a slot is free, and the next event of that key may be due

    async def _heartbeat(self) -> None:
        lease = self._settings.lease_seconds
        interval = max(lease / 3.0, 0.05)
        while True:
            await asyncio.sleep(interval)
            claims = list(self._inflight.values())
            if not claims:
                continue
            try:
                await self._inbox.extend_leases(claims, lease)
            except StoreError as exc:
                log.warning("lease_renewal_failed", error=str(exc), count=len(claims))

    # -- one attempt ---------------------------------------------------------------------------

    async def _attempts_within_deadline(
        self, event_id: str, claims: Sequence[Claim]
    ) -> list[tuple[AttemptResult, bool]] | None:
        """The sync attempts, or None when ``sync_deadline`` passed first: those still running
        are stopped and released for the background loop, since the sender has stopped waiting."""
        tasks = [asyncio.create_task(self._attempt(c, sync=True)) for c in claims]
        if not tasks:
            return []
        try:
            _done, running = await asyncio.wait(tasks, timeout=self._deadline)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if not running:
            return [t.result() for t in tasks]
        log.warning("sync_deadline_passed", event_id=event_id, deadline=self._deadline, unfinished=len(running))
        for task in running:
            self._overdue.add(task)
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for task in running:
            self._overdue.discard(task)
        return None

    async def _attempt(self, claim: Claim, *, sync: bool) -> tuple[AttemptResult, bool]:
        """Run the sink for ``claim`` and record the outcome; (result, recorded)."""
        slot = (claim.event.seq, claim.sink)
        self._inflight[slot] = claim
        started = time.time()
        try:
            result = await self._deliver(claim, started, sync=sync)
        except asyncio.CancelledError:
            # Parked for the sender's resend, unless the sync deadline passed: then the sender may
            # not resend soon (it saw a 503 only after a long wait), so the background loop delivers.
            release = self._released(started, sync=sync, overdue=asyncio.current_task() in self._overdue)
            self._inflight.pop(slot, None)
            await asyncio.shield(self._finish(claim, release))
            raise
        self._inflight.pop(slot, None)
        recorded = await self._finish(claim, result)
        if recorded and result.status is DeliveryStatus.DELIVERED and self._on_delivered is not None:
            self._on_delivered(claim)
        return result, recorded

    async def _attempt_batch(self, sink_name: str, claims: Sequence[Claim]) -> None:
        """Deliver ``claims`` (heads of distinct keys of one sink) as one batch and settle them
        in one transaction, after the sink has them all; the same outcomes as ``_attempt``."""
        sink = self._sinks[sink_name]
        assert isinstance(sink, BatchSink)
        for claim in claims:
            self._inflight[(claim.event.seq, claim.sink)] = claim
        started = time.time()
        results: dict[int, AttemptResult] = {}
        ready: list[int] = []
        with self._pacer.working():
            for i, claim in enumerate(claims):
                try:
                    early = self._before_sink(claim, sink, started)
                except Exception as exc:  # a filter that fails: retried, as in ``_run_sink``
                    early = self._sink_result(claim, exc, started, 0.0, sync=False)
                if early is None:
                    ready.append(i)
                else:
                    results[i] = early
        try:
            perf = time.perf_counter()
            try:
                outcomes = await sink.deliver_batch([claims[i].event for i in ready])
            except Exception as exc:  # the batch as a whole failed: each is retried
                outcomes = [exc] * len(ready)
            duration = time.perf_counter() - perf
        except asyncio.CancelledError:
            release = self._released(started, sync=False, overdue=False)
            for claim in claims:
                self._inflight.pop((claim.event.seq, claim.sink), None)
            await asyncio.shield(self._finish_batch([(c, release) for c in claims]))
            raise
        with self._pacer.working():
            for i, outcome in zip(ready, outcomes, strict=True):
                claim = claims[i]
                with structlog.contextvars.bound_contextvars(
                    event_id=claim.event.event_id, sink=claim.sink, attempt=claim.attempt
                ):
                    results[i] = self._sink_result(claim, outcome, started, duration, sync=False)
            for claim in claims:
                self._inflight.pop((claim.event.seq, claim.sink), None)
        settles = [(claims[i], results[i]) for i in range(len(claims))]
        held = await self._finish_batch(settles)
        if self._on_delivered is not None:
            for (claim, result), recorded in zip(settles, held, strict=True):
                if recorded and result.status is DeliveryStatus.DELIVERED:
                    self._on_delivered(claim)

    async def _finish_batch(self, settles: Sequence[tuple[Claim, AttemptResult]]) -> list[bool]:
        """Settle a batch in one transaction; should the store be busy, each as ``_finish`` does."""
        try:
            held = await self._inbox.finish_many(settles)
        except StoreError as exc:
            log.warning("finish_failed", count=len(settles), error=str(exc))
            return [await self._finish(claim, result) for claim, result in settles]
        for (claim, _), kept in zip(settles, held, strict=True):
            if not kept:
                log.warning("claim_lost", event_id=claim.event.event_id, sink=claim.sink)
        return held

    def _released(self, started: float, *, sync: bool, overdue: bool) -> AttemptResult:
        """A delivery cut short (stop, request gone, sync deadline): pending again, no attempt."""
        parked = sync and self._park and not overdue
        return AttemptResult(
            status=DeliveryStatus.PENDING,
            outcome=AttemptOutcome.RELEASED,
            started_at=started,
            duration=time.time() - started,
            error=(
                f"released: not finished within sync_deadline ({self._deadline:g} s)"
                if overdue
                else "released: the dispatcher stopped or the request ended"
            ),
            next_attempt_at=None if parked else time.time(),
        )

    async def _deliver(self, claim: Claim, started: float, *, sync: bool) -> AttemptResult:
        event = claim.event
        sink = self._sinks[claim.sink]
        bound = structlog.contextvars.bound_contextvars(
            event_id=event.event_id, sink=claim.sink, attempt=claim.attempt
        )
        if self._tracing.enabled:
            try:
                traceparent = await self._inbox.trace_context(event.seq)
            except StoreError:
                traceparent = None  # the attempt is traced all the same, in a trace of its own
            with bound, self._traced_attempt(claim, traceparent) as span:
                result = await self._run_sink(claim, sink, started, sync=sync)
                record_attempt(span, result)
                return result
        with bound:
            return await self._run_sink(claim, sink, started, sync=sync)

    def _traced_attempt(
        self, claim: Claim, traceparent: str | None
    ) -> contextlib.AbstractContextManager[Span | None]:
        event = claim.event
        attributes = {
            "tcwebhook.event_id": event.event_id,
            "tcwebhook.sink": claim.sink,
            "tcwebhook.attempt": claim.attempt,
            "tcwebhook.kind": event.kind.value,
            "tcwebhook.event_name": event.event_name,
            "tcwebhook.order_id": event.order_id,
            "tcwebhook.shipment_id": event.shipment_id,
        }
        return self._tracing.continued(
            f"deliver {claim.sink}", traceparent, event.received_at.timestamp(), attributes
        )

    def _before_sink(self, claim: Claim, sink: Sink | BatchSink, started: float) -> AttemptResult | None:
        """The outcome decided without the sink (given up, not selected); None: deliver it."""
        if claim.attempt > self._settings.max_attempts:
            # Earlier attempts were started and never finished (crashes): do not try forever.
            error = f"gave up after {claim.attempt - 1} attempts that never finished"
            with structlog.contextvars.bound_contextvars(
                event_id=claim.event.event_id, sink=claim.sink, attempt=claim.attempt
            ):
                log.error("delivery_dead", reason=error)
            return AttemptResult(DeliveryStatus.DEAD, None, started, error=error)
        if claim.event.kind is EventKind.UNKNOWN:
            # Held for a sink that does not take what it cannot read; its filter names known kinds.
            if claim.sink not in self._accept_unknown:
                return AttemptResult(DeliveryStatus.UNRECOGNISED, None, started)
            return None
        if not self._sinks[claim.sink].accepts(claim.event):
            return AttemptResult(DeliveryStatus.SKIPPED, None, started)
        return None

    async def _run_sink(self, claim: Claim, sink: Sink, started: float, *, sync: bool) -> AttemptResult:
        clock = time.perf_counter()
        try:
            early = self._before_sink(claim, sink, started)
            if early is not None:
                return early
            with self._tracing.span(f"sink {claim.sink}", kind=SpanKind.CLIENT):
                await sink.deliver(claim.event)
        except Exception as exc:
            return self._sink_result(claim, exc, started, time.perf_counter() - clock, sync=sync)
        return self._sink_result(claim, None, started, time.perf_counter() - clock, sync=sync)

    def _sink_result(
        self, claim: Claim, error: BaseException | None, started: float, duration: float, *, sync: bool
    ) -> AttemptResult:
        """The attempt's result from what the sink did: None (it has the event) or its exception."""
        if error is None:
            log.info("delivered", duration_ms=round(duration * 1000, 3))
            return AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, started, duration)
        if isinstance(error, PermanentError):
            described = _describe(error)
            log.warning("delivery_refused", error=described)
            return AttemptResult(DeliveryStatus.DEAD, AttemptOutcome.PERMANENT, started, duration, described)
        return self._transient(claim, started, duration, _describe(error), sync=sync)

    def _transient(
        self, claim: Claim, started: float, duration: float, error: str, *, sync: bool
    ) -> AttemptResult:
        if sync and self._park:
            # The sender retries (503); retrying here as well would deliver twice.
            log.warning("delivery_failed", error=error, retry="by sender")
            return AttemptResult(
                DeliveryStatus.PENDING, AttemptOutcome.TRANSIENT, started, duration, error, None
            )
        now = time.time()
        age = now - claim.event.received_at.timestamp()
        reason = self._backoff.give_up(claim.attempt, age)
        if reason is not None:
            log.error("delivery_dead", error=error, reason=reason)
            return AttemptResult(
                DeliveryStatus.DEAD, AttemptOutcome.TRANSIENT, started, duration, f"{reason}; last error: {error}"
            )
        delay = self._backoff.delay(claim.attempt, self._rng)
        log.warning("delivery_failed", error=error, retry_in=round(delay, 3))
        return AttemptResult(
            DeliveryStatus.PENDING, AttemptOutcome.TRANSIENT, started, duration, error, now + delay
        )

    async def _finish(self, claim: Claim, result: AttemptResult) -> bool:
        """Record ``result``; retried briefly when the store is busy. False: not recorded."""
        tries = 0
        while True:
            tries += 1
            try:
                held = await self._inbox.finish(claim, result)
            except StoreError as exc:
                log.warning("finish_failed", event_id=claim.event.event_id, sink=claim.sink, error=str(exc))
                if _FINISH_BACKOFF.give_up(tries) is not None:
                    break
                await asyncio.sleep(_FINISH_BACKOFF.delay(tries))
                continue
            if not held:
                log.warning("claim_lost", event_id=claim.event.event_id, sink=claim.sink)
            return held
        # The lease will run out and the delivery be attempted again: at-least-once.
        log.error("finish_abandoned", event_id=claim.event.event_id, sink=claim.sink)
        return False

    # -- synchronous delivery ------------------------------------------------------------------

    async def deliver_now(self, event_id: str) -> SyncOutcome:
        """Deliver a stored event before answering its request (see the module docstring)."""
        if not self._names:
            return SyncOutcome(SyncStatus.DELIVERED, "no sink configured")
        try:
            found = await self._inbox.claim_event(
                event_id,
                owner=self.owner,
                sinks=self._names,
                lease=self._settings.lease_seconds,
                stale_kinds=self._stale_kinds,
            )
        except StoreError as exc:
            log.warning("sync_claim_failed", event_id=event_id, error=str(exc))
            return SyncOutcome(SyncStatus.TRANSIENT, "event store unavailable")
        outcomes = await self._attempts_within_deadline(event_id, found.claims)
        if outcomes is None:
            return SyncOutcome(SyncStatus.TRANSIENT, f"not delivered within sync_deadline ({self._deadline:g} s)")
        statuses = dict(found.statuses)
        retry: list[str] = list(found.waiting)
        errors: dict[str, str] = {}
        for claim, (result, recorded) in zip(found.claims, outcomes, strict=True):
            statuses[claim.sink] = result.status
            if result.error:
                errors[claim.sink] = result.error
            if result.status is DeliveryStatus.PENDING or not recorded:
                retry.append(claim.sink)
        if retry:
            detail = "; ".join(
                f"{sink}: {errors.get(sink, 'waiting for an earlier event of this key')}" for sink in retry
            )
            return SyncOutcome(SyncStatus.TRANSIENT, detail)
        dead = [sink for sink, status in statuses.items() if status == DeliveryStatus.DEAD]
        if dead:
            detail = "; ".join(f"{sink}: {errors.get(sink, 'dead-lettered earlier')}" for sink in dead)
            return SyncOutcome(SyncStatus.PERMANENT, detail)
        return SyncOutcome(SyncStatus.DELIVERED)
