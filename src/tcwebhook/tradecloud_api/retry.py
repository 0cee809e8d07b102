"""Back-off between attempts of one Tradecloud API call (exponential, capped, with jitter)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

# 5xx and throttling are worth another attempt; anything else is the answer.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt ``n + 1`` is ``initial * multiplier**n``, capped, +/- ``jitter``."""

    initial: float = 0.5
    multiplier: float = 2.0
    maximum: float = 20.0
    jitter: float = 0.2

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        base = min(self.maximum, self.initial * self.multiplier**attempt)
        if retry_after is not None:
            # Honour the server's wish, but never wait longer than our own cap.
            base = min(self.maximum, max(base, retry_after))
        spread = base * self.jitter
        return max(0.0, base + random.uniform(-spread, spread))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds, when it is a plain number."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from this API, and our own back-off is fine
    return seconds if seconds >= 0 else None


def is_retryable(response: httpx.Response) -> bool:
    return response.status_code in RETRYABLE_STATUS
