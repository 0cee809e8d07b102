"""What a synchronous delivery tells the request that stored the event (``[delivery] mode = "sync"``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SyncStatus(StrEnum):
    """How a synchronous delivery ended, as the receiver answers it."""

    DELIVERED = "delivered"  # every selecting sink has it (or it is superseded): 200
    PERMANENT = "permanent"  # a sink refused it for good; kept as dead-letter: 400
    TRANSIENT = "transient"  # try again later (the sender retries): 503


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What ``Dispatcher.deliver_now`` tells the request that stored the event."""

    status: SyncStatus
    detail: str = ""
