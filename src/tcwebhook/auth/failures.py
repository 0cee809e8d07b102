"""Rate-limited logging of authentication failures: one line per peer per window, with a count."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

_MAX_PEERS = 10_000  # bound memory under a spray of failing peers


class FailureLog:
    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._peers: dict[str, tuple[float, int]] = {}  # peer -> (window start, suppressed)

    def record(self, peer: str, reason: str) -> bool:
        """Note a failure; log it when the peer's window is new. Returns whether it logged."""
        now = self._clock()
        start, suppressed = self._peers.get(peer, (None, 0))
        if start is not None and now - start < self._window:
            self._peers[peer] = (start, suppressed + 1)
            return False
        if len(self._peers) >= _MAX_PEERS:
            self._peers.clear()
        self._peers[peer] = (now, 0)
        log.warning(
            "auth_failed",
            peer=peer,
            reason=reason,
            suppressed_since_last=suppressed,
            window_seconds=self._window,
        )
        return True
