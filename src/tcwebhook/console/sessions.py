"""Console sessions kept in the store, with idle expiry, and the throttle on failed logins.

A session is a random token in a cookie; the store keeps only its SHA-256, so a database dump or
a log line never holds a usable cookie. Because the store holds them, every `serve` or `console`
process on it knows every session: behind a balancer a sign-in made on one works on the others,
a restart signs no one out, and a sign-out or an idle expiry holds everywhere at once. Sessions end
at sign-out and after ``idle_timeout`` seconds without a request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tcwebhook.console.users import Role, User
from tcwebhook.inbox.base import ConsoleSessions

Clock = Callable[[], float]
# A request refreshes its session's last use at most this often: one write per half minute of
# browsing, not one per page (idle timeouts are minutes long).
TOUCH_EVERY = 30.0


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(slots=True)
class Session:
    user: User
    csrf_token: str
    last_seen: float
    created: float = field(default_factory=time.time)


class SessionStore:
    def __init__(self, idle_timeout: float, backend: ConsoleSessions, clock: Clock = time.time) -> None:
        self._idle = idle_timeout
        self._backend = backend
        self._clock = clock

    async def create(self, user: User) -> tuple[str, Session]:
        """A new session for ``user``: (cookie token, session)."""
        now = self._clock()
        await self._backend.sweep_sessions(now - self._idle)
        token = secrets.token_urlsafe(32)
        session = Session(user=user, csrf_token=secrets.token_urlsafe(32), last_seen=now, created=now)
        await self._backend.put_session(_digest(token), user.username, user.role, session.csrf_token, now)
        return token, session

    async def get(self, token: str | None) -> Session | None:
        """The live session of a cookie token (and it counts as activity), or None."""
        if not token or len(token) > 256:
            return None
        key = _digest(token)
        found = await self._backend.get_session(key)
        if found is None:
            return None
        username, role, csrf, created, last_seen = found
        now = self._clock()
        if now - last_seen > self._idle or role not in ("viewer", "operator"):
            await self._backend.end_session(key)
            return None
        if now - last_seen > TOUCH_EVERY:
            await self._backend.touch_session(key, now)
            last_seen = now
        checked: Role = "operator" if role == "operator" else "viewer"
        return Session(User(username, checked), csrf, last_seen, created)

    async def end(self, token: str | None) -> None:
        if token:
            await self._backend.end_session(_digest(token))


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
