"""Event ids: UUIDv7 strings (time-ordered, random-suffixed) that sinks can dedupe on."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tcwebhook.errors import EventNotFound

if TYPE_CHECKING:
    from tcwebhook.inbox.base import Browser

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RAND_B = (1 << 62) - 1


def new_id() -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | (0x7 << 76) | (((rand >> 64) & 0xFFF) << 64) | (0b10 << 62) | (rand & _RAND_B)
    return str(uuid.UUID(int=value))


def updated_micros(value: str | None) -> int | None:
    """``lastUpdatedAt`` as microseconds since the epoch, for ordering; None when unreadable.

    Tradecloud sends both zoned and zone-less timestamps; a zone-less one is taken as UTC.
    """
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


MIN_PREFIX = 8  # shorter prefixes of a time-ordered id match every event of the same minutes
_FULL_ID = 36


async def resolve_event_id(inbox: Browser, given: str) -> str:
    """The event id that ``given`` is, or is the unique prefix (8 characters or more) of."""
    wanted = given.strip().lower()
    if len(wanted) >= _FULL_ID:
        return wanted
    if len(wanted) < MIN_PREFIX:
        raise EventNotFound(f"no event {given} (give the whole id, or at least {MIN_PREFIX} characters of it)")
    found = await inbox.event_ids_starting(wanted, limit=2)
    if not found:
        raise EventNotFound(f"no event id starts with {given}")
    if len(found) > 1:
        raise EventNotFound(f"{given} starts several event ids ({found[0]}, {found[1]}, …): give more of it")
    return found[0]
