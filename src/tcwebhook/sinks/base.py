"""The sink interfaces: where the dispatcher hands a committed event to the ERP side.

A sink raises ``PermanentError`` when retrying can never succeed (the event is dead-lettered at
once) and anything else (``TransientError`` or any exception) to have the attempt retried.

The dispatcher hands every sink the ``StoredEvent`` it claimed (``Sink``). The configured sinks
are wrapped by the Tradecloud-backed sink, which hands them either that stored event or, when it
has fetched, enriched or downloaded something, an ``Event`` carrying it; so every sink that can be
wrapped takes both (``EventSink``). Both forms provide ``EventLike``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from tcwebhook.inbox.base import StoredEvent
from tcwebhook.sinks.event import Event, EventLike


@runtime_checkable
class Sink(Protocol):
    """What the dispatcher delivers to."""

    name: str

    def accepts(self, event: StoredEvent) -> bool:
        """Whether the sink's ``events`` filter (kinds / event-name globs) selects this event."""

    async def deliver(self, event: StoredEvent) -> None:
        """Deliver once; return normally only when the ERP side has it."""

    async def close(self) -> None: ...


@runtime_checkable
class EventSink(Sink, Protocol):
    """A sink that also takes an ``Event`` with extras (python, http and files sinks)."""

    def accepts(self, event: EventLike) -> bool: ...

    async def deliver(self, event: StoredEvent | Event) -> None: ...


@runtime_checkable
class Probed(Protocol):
    """A sink with a server to reach (sftp, amqp, sql): start-up connects to it once."""

    name: str

    async def probe(self) -> str:
        """Connect and check what deliveries need; what was found, or a StartupError (one sentence)."""



@runtime_checkable
class BatchSink(Protocol):
    """A sink that takes several events at once for less than it costs one by one (the files
    sink: one folder fsync for the batch). The dispatcher settles the batch after it returns."""

    name: str

    @property
    def batches(self) -> bool:
        """Whether ``deliver_batch`` is worth using (a wrapper asks its inner sink)."""

    async def deliver_batch(self, events: Sequence[StoredEvent]) -> list[BaseException | None]:
        """Deliver each event; per event, in order, None when the ERP side has it, else the
        exception ``deliver`` would have raised for it."""
