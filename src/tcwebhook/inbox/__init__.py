"""The durable inbox: events, quarantine and delivery state (see ``inbox.base``)."""

from tcwebhook.inbox.base import (
    Attempt,
    AttemptOutcome,
    AttemptResult,
    Claim,
    Delivery,
    DeliveryStatus,
    EventClaim,
    EventFilter,
    EventStatus,
    Inbox,
    KeyUpdate,
    NewEvent,
    QuarantineEntry,
    ReplayResult,
    SinkHealth,
    StoredEvent,
    StoreInfo,
    StoreResult,
)
from tcwebhook.inbox.factory import open_inbox
from tcwebhook.inbox.sqlite import SqliteInbox

__all__ = [
    "Attempt",
    "AttemptOutcome",
    "AttemptResult",
    "Claim",
    "Delivery",
    "DeliveryStatus",
    "EventClaim",
    "EventFilter",
    "EventStatus",
    "Inbox",
    "KeyUpdate",
    "NewEvent",
    "QuarantineEntry",
    "ReplayResult",
    "SinkHealth",
    "SqliteInbox",
    "StoreInfo",
    "StoreResult",
    "StoredEvent",
    "open_inbox",
]
