"""The client's own request rate for the Tradecloud API.

Tradecloud allows at most 10 requests per second per integration user and answers 429 beyond
(API rules). Every request of one ``TradecloudClient`` — logins, GET fetches, enrichment, document
metadata and downloads through the API, polling for reconciliation, resends, ``connect`` — takes
a turn here first, so the budget holds however many deliveries run at once. A 429 pauses every
caller until its ``Retry-After`` has passed, not only the one that got it.

The window slides, and is kept on the API's side too: a request holds its place from the moment it
is sent until one second after its answer (its headers) came back, and at most ``per_second``
places exist. A request reaches the API somewhere between those two moments, so however the
network delays some requests and not others, no second at the API sees more than ``per_second``
of them. It is per process: processes sharing an integration user (several ``serve``/``worker``
on one PostgreSQL store) each take their own share, so their settings must add up to the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable


class RequestRate:
    """At most ``per_second`` requests in any window of one second (for a rate below 1, one
    request per ``1 / per_second`` seconds); callers wait their turn in arrival order.

    ``async with rate.turn():`` around sending a request and reading its answer's headers.
    """

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.per_second = per_second
        self._count = max(1, math.floor(per_second))
        self._window = self._count / per_second
        self._clock = clock
        self._sleep = sleep
        self._answered: deque[float] = deque()  # when each recent request got its answer
        self._in_flight = 0
        self._freed = asyncio.Event()
        self._paused_until = 0.0
        self._queue = asyncio.Lock()
        self.waited = 0.0  # seconds the first caller in line spent waiting, in total

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold one place of the budget while the request is sent and its answer arrives."""
        await self._acquire()
        try:
            yield
        finally:
            self._in_flight -= 1
            self._answered.append(self._clock())
            self._freed.set()

    async def _acquire(self) -> None:
        async with self._queue:  # first come, first served
            while True:
                now = self._clock()
                while self._answered and self._answered[0] <= now - self._window:
                    self._answered.popleft()
                wait = self._paused_until - now
                if self._in_flight + len(self._answered) >= self._count:
                    if len(self._answered) == 0:
                        # Every place is a request still in flight: wait for one to be answered.
                        self._freed.clear()
                        await self._freed.wait()
                        continue
                    wait = max(wait, self._answered[0] + self._window - now)
                if wait <= 0:
                    break
                self.waited += wait
                await self._sleep(wait)
            self._in_flight += 1

    def pause(self, seconds: float) -> None:
        """The API said 429: no request leaves for ``seconds`` (a longer pause already set stays)."""
        if seconds > 0:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
