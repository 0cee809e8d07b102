"""One API fetch serves every pending request for the same object.

The rule: a fetch that *started* at or after the moment a trigger was received returns a state
at least as new as that trigger, so it may answer it. Concurrent triggers share the fetch in
flight; later ones reuse a finished result while it satisfies the rule. Results are kept for a
bounded number of keys and a bounded time (whole orders can be large).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Entry(Generic[T]):
    started_at: float
    task: asyncio.Task[T]


class Coalescer(Generic[T]):
    """Shares fetches per key between callers whose triggers predate the fetch."""

    def __init__(
        self,
        *,
        max_keys: int = 256,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()
        self._max_keys = max_keys
        self._ttl = ttl
        self._clock = clock
        self.fetches = 0
        self.shared = 0

    async def get(self, key: str, not_before: float, fetch: Callable[[], Awaitable[T]]) -> T:
        """The result of a fetch for ``key`` that started at or after ``not_before``."""
        entry = self._entries.get(key)
        if entry is None or not self._usable(entry, not_before):
            entry = self._start(key, fetch)
        else:
            self.shared += 1
            self._entries.move_to_end(key)
        # shield: one caller's cancellation must not cancel the fetch others wait for.
        return await asyncio.shield(entry.task)

    def _usable(self, entry: _Entry[T], not_before: float) -> bool:
        if entry.started_at < not_before:
            return False
        if not entry.task.done():
            return True
        if entry.task.cancelled() or entry.task.exception() is not None:
            return False  # failures are not remembered: the next caller tries again
        return self._clock() - entry.started_at <= self._ttl

    def __len__(self) -> int:
        return len(self._entries)

    def forget(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.task.done():
            del self._entries[key]

    def _start(self, key: str, fetch: Callable[[], Awaitable[T]]) -> _Entry[T]:
        async def run() -> T:
            return await fetch()

        task = asyncio.get_running_loop().create_task(run())
        # Mark the exception retrieved even when every waiter was cancelled.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        entry = _Entry(self._clock(), task)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self.fetches += 1
        self._evict()
        return entry

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, e in self._entries.items() if e.task.done()]:
            if now - self._entries[key].started_at > self._ttl:
                del self._entries[key]
        while len(self._entries) > self._max_keys:
            oldest = next(iter(self._entries))
            if not self._entries[oldest].task.done():
                break  # never drop a fetch in flight; the map shrinks once it settles
            del self._entries[oldest]
