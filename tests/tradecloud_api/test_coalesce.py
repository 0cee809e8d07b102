"""The coalescer on its own: sharing rule, cancellation, bounds."""

from __future__ import annotations

import asyncio

import pytest

from tcwebhook.tradecloud_api import Coalescer

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestCoalescer:
    """One fetch per key and moment, never a stale or failed one."""

    async def test_reuse_only_for_triggers_older_than_the_fetch(self) -> None:
        clock, calls = Clock(), []

        async def fetch() -> int:
            calls.append(clock.now)
            return len(calls)

        co: Coalescer[int] = Coalescer(clock=clock)
        assert await co.get("k", 999.0, fetch) == 1
        assert await co.get("k", 1000.0, fetch) == 1  # received as the fetch started
        assert await co.get("k", 1000.5, fetch) == 2  # received after: must fetch again
        assert await co.get("other", 0.0, fetch) == 3

    async def test_results_expire(self) -> None:
        clock = Clock()
        results = iter(range(10))

        async def fetch() -> int:
            return next(results)

        co: Coalescer[int] = Coalescer(ttl=10, clock=clock)
        assert await co.get("k", 0, fetch) == 0
        clock.now += 11
        assert await co.get("k", 0, fetch) == 1

    async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch(self) -> None:
        release = asyncio.Event()

        async def fetch() -> str:
            await release.wait()
            return "done"

        co: Coalescer[str] = Coalescer()
        first = asyncio.create_task(co.get("k", 0, fetch))
        second = asyncio.create_task(co.get("k", 0, fetch))
        await asyncio.sleep(0)
        first.cancel()
        release.set()
        assert await second == "done"
        assert first.cancelled() and co.fetches == 1

    async def test_bounded_number_of_keys(self) -> None:
        async def fetch() -> int:
            return 1

        co: Coalescer[int] = Coalescer(max_keys=3)
        for i in range(10):
            await co.get(f"k{i}", 0, fetch)
        assert len(co) == 3
        co.forget("k9")
        assert len(co) == 2
