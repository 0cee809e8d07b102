"""Console sessions kept in memory, with idle expiry, and the throttle on failed logins.

A session is a random token in a cookie; the server keeps only its SHA-256, so a memory dump or
a log line never holds a usable cookie. Sessions end at logout, after ``idle_timeout`` seconds
without a request, and when the process restarts (operators log in again).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tcwebhook.console.users import User

Clock = Callable[[], float]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(slots=True)
class Session:
    user: User
    csrf_token: str
    last_seen: float
    created: float = field(default_factory=time.time)


class SessionStore:
    def __init__(self, idle_timeout: float, clock: Clock = time.monotonic, max_sessions: int = 10_000) -> None:
        self._idle = idle_timeout
        self._clock = clock
        self._max = max_sessions
        self._sessions: dict[str, Session] = {}

    def create(self, user: User) -> tuple[str, Session]:
        """A new session for ``user``: (cookie token, session)."""
        self._sweep()
        token = secrets.token_urlsafe(32)
        session = Session(user=user, csrf_token=secrets.token_urlsafe(32), last_seen=self._clock())
        self._sessions[_digest(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie token (and it counts as activity), or None."""
        if not token:
            return None
        key = _digest(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self._idle:
            del self._sessions[key]
            return None
        session.last_seen = now
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(_digest(token), None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if now - s.last_seen > self._idle]:
            del self._sessions[key]
        # A flood of logins must not grow memory without bound: the oldest sessions go first.
        while len(self._sessions) >= self._max:
            oldest = min(self._sessions, key=lambda k: self._sessions[k].last_seen)
            del self._sessions[oldest]


class LoginThrottle:
    """Failed logins: at most ``attempts`` per (username, address), ``per_address`` per address, in ``window`` s.

    Keyed by the username alone, anyone could lock an operator out by failing as them; keyed
    by (username, address), only that address is slowed down, and the separate, higher
    per-address ceiling stops one address from trying many usernames.
    """

    def __init__(
        self, attempts: int, window: float, per_address: int | None = None, clock: Clock = time.monotonic
    ) -> None:
        self._limits = {"pair": attempts, "peer": per_address if per_address is not None else attempts * 4}
        self._window = window
        self._clock = clock
        self._failures: dict[tuple[str, ...], deque[float]] = {}

    def _keys(self, peer: str, username: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return ("pair", username, peer), ("peer", peer)

    def _recent(self, key: tuple[str, ...]) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        horizon = self._clock() - self._window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, peer: str, username: str) -> float:
        """0 when a login may be tried now, else the seconds until one may."""
        waits = []
        for key in self._keys(peer, username):
            times = self._recent(key)
            if len(times) >= self._limits[key[0]]:
                waits.append(times[0] + self._window - self._clock())
        return max(waits, default=0.0)

    def failed(self, peer: str, username: str) -> None:
        now = self._clock()
        if len(self._failures) > 100_000:  # bounded memory under a spray of usernames
            self._failures.clear()
        for key in self._keys(peer, username):
            times = self._failures.setdefault(key, deque())
            times.append(now)
            while len(times) > self._limits[key[0]]:
                times.popleft()
