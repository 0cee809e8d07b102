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


class FailureLimit:
    """Failed authentications counted per client address in a fixed window.

    Past ``limit`` failures within ``window`` seconds, further failures of that address are
    answered 429 until the window ends. Credentials are checked first, so a correct request is
    never refused here; what the limit bounds is the work and the log volume a guessing client
    causes, and it tells a misconfigured sender to back off.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._peers: dict[str, tuple[float, int]] = {}  # peer -> (window start, failures)

    def failed(self, peer: str) -> float | None:
        """Count a failure; the seconds until the window ends when ``peer`` is over the limit."""
        if self.limit <= 0:
            return None
        now = self._clock()
        start, count = self._peers.get(peer, (now, 0))
        if now - start >= self.window:
            self._peers.pop(peer, None)  # re-inserted below: the dict stays in window order
            start, count = now, 0
        elif peer not in self._peers and len(self._peers) >= _MAX_PEERS:
            # Forget the oldest windows first: a spray of addresses cannot reset everyone's count.
            for old in list(self._peers)[: _MAX_PEERS // 10]:
                del self._peers[old]
        count += 1
        self._peers[peer] = (start, count)
        if count <= self.limit:
            return None
        return max(0.0, start + self.window - now)
