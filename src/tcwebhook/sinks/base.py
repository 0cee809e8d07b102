"""The sink interface: where the dispatcher hands a committed event to the ERP side.

A sink raises ``PermanentError`` when retrying can never succeed (the event is dead-lettered at
once) and anything else (``TransientError`` or any exception) to have the attempt retried.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from tcwebhook.inbox.base import StoredEvent


@runtime_checkable
class Sink(Protocol):
    name: str

    def accepts(self, event: StoredEvent) -> bool:
        """Whether the sink's ``events`` filter (kinds / event-name globs) selects this event."""

    async def deliver(self, event: StoredEvent) -> None:
        """Deliver once; return normally only when the ERP side has it."""

    async def close(self) -> None: ...
