"""How the dispatcher shares the event loop with the receiver in the same process.

Under load the dispatcher keeps to ``LOOP_SHARE`` of the loop's time, so intake is never starved:
after a claim, while the loop runs ready callbacks ``BUSY_LAG`` late or later (requests are
waiting), it pauses in proportion to the loop time its own work took (at most ``MAX_PAUSE``).
Deliveries of events stored since it last claimed are the exception: they are taken at the
rate they arrive, or the backlog would grow without bound under sustained intake, and only
older work (a backlog, replays) waits for idle time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOOP_SHARE = 0.25
BUSY_LAG = 0.001
MAX_PAUSE = 0.05


class Pacer:
    """One dispatcher's account of its loop time and of the deliveries intake gave it."""

    def __init__(self) -> None:
        self.spent = 0.0  # loop CPU the dispatcher's own work took since it last yielded
        self.owed = 0  # deliveries of events stored since, not claimed yet

    @contextmanager
    def working(self) -> Iterator[None]:
        """Count the block's CPU as the dispatcher's own loop time."""
        clock = time.thread_time()
        try:
            yield
        finally:
            self.spent += time.thread_time() - clock

    def stored(self, deliveries: int) -> None:
        self.owed += deliveries

    def claimed(self, deliveries: int) -> None:
        self.owed = max(0, self.owed - deliveries)

    async def yield_to_intake(self) -> None:
        """Pause while requests wait for the loop, unless behind intake."""
        spent, self.spent = self.spent, 0.0
        if self.owed > 0:
            return
        loop = asyncio.get_running_loop()
        probe = loop.time()
        await asyncio.sleep(0)  # returns after every callback that was ready: the loop's backlog
        if loop.time() - probe < BUSY_LAG or spent <= 0.0:
            return
        await asyncio.sleep(min(spent * (1.0 - LOOP_SHARE) / LOOP_SHARE, MAX_PAUSE))
