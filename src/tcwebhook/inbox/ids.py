"""Event ids: UUIDv7 strings (time-ordered, random-suffixed) that sinks can dedupe on."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RAND_B = (1 << 62) - 1
_POOL_IDS = 256


class _RandomPool:
    """10-byte slices of OS randomness fetched in bulk.

    ``os.urandom`` releases the GIL for its system call; on a busy server each release hands the
    GIL to the inbox writer thread and the request waits to get it back. One call per 256 ids.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the unused bytes (a forked child must not replay its parent's randomness)."""
        self._lock = threading.Lock()
        self._buf = b""
        self._pos = 0

    def take(self) -> bytes:
        with self._lock:
            pos = self._pos
            if pos >= len(self._buf):
                self._buf, pos = os.urandom(10 * _POOL_IDS), 0
            self._pos = pos + 10
            return self._buf[pos : pos + 10]


_POOL = _RandomPool()
os.register_at_fork(after_in_child=_POOL.reset)


def new_id() -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(_POOL.take(), "big")
    value = (millis << 80) | (0x7 << 76) | (((rand >> 64) & 0xFFF) << 64) | (0b10 << 62) | (rand & _RAND_B)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
