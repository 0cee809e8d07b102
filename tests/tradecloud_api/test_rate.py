"""The client's request budget: at most N requests in any second, a 429 holds every caller back."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from tcwebhook.backoff import Backoff
from tcwebhook.config import TradecloudSettings
from tcwebhook.tradecloud_api import TradecloudClient
from tcwebhook.tradecloud_api.rate import RequestRate

from .conftest import FAST
from .fake_api import FakeTradecloud

pytestmark = pytest.mark.anyio


class FakeTime:
    """A monotonic clock whose sleeps move it forward at once."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def most_in_one_second(times: list[float]) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


class TestRequestRate:
    """The sliding window and the pause, on an injected clock."""

    @pytest.mark.parametrize("rate", [1.0, 8.0, 10.0])
    async def test_never_more_than_the_rate_in_any_second(self, rate: float) -> None:
        clock = FakeTime()
        limiter = RequestRate(rate, clock=clock, sleep=clock.sleep)
        sent: list[float] = []

        async def one() -> None:
            async with limiter.turn():
                sent.append(clock())

        await asyncio.gather(*(one() for _ in range(55)))
        assert len(sent) == 55
        assert most_in_one_second(sent) == int(rate)
        # Full speed all the same: 55 requests take just over (55 / rate - 1) seconds.
        assert sent[-1] - sent[0] == pytest.approx((55 // int(rate) - (55 % int(rate) == 0)) * 1.0)

    async def test_below_one_per_second(self) -> None:
        clock = FakeTime()
        limiter = RequestRate(0.5, clock=clock, sleep=clock.sleep)
        sent = []
        for _ in range(3):
            async with limiter.turn():
                sent.append(clock())
        assert [b - a for a, b in itertools.pairwise(sent)] == [2.0, 2.0]

    async def test_pause_holds_everyone(self) -> None:
        clock = FakeTime()
        limiter = RequestRate(8, clock=clock, sleep=clock.sleep)
        async with limiter.turn():
            limiter.pause(3.0)
            limiter.pause(1.0)  # a shorter pause does not cut the longer one
        start = clock()

        async def one() -> None:
            async with limiter.turn():
                pass

        await asyncio.gather(one(), one())
        assert clock() - start == pytest.approx(3.0)

    async def test_a_place_is_held_until_the_answer(self) -> None:
        """Requests still waiting for their answer use up the budget: the next one waits for them."""
        clock = FakeTime()
        limiter = RequestRate(2, clock=clock, sleep=clock.sleep)
        answer = asyncio.Event()
        order: list[str] = []

        async def slow(name: str) -> None:
            async with limiter.turn():
                order.append(f"sent {name}")
                await answer.wait()
                clock.now += 5.0 if name == "a" else 0.0  # a's answer comes five seconds later
            order.append(f"answered {name}")

        async def third() -> None:
            async with limiter.turn():
                order.append(f"sent c at {clock() - 1000:g}")

        tasks = [asyncio.create_task(slow("a")), asyncio.create_task(slow("b"))]
        await asyncio.sleep(0)
        waiting = asyncio.create_task(third())
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == ["sent a", "sent b"]  # c waits though no second has passed with two sent
        answer.set()
        await asyncio.gather(*tasks, waiting)
        assert order[-1] == "sent c at 6"  # one second after the first answer (at 5)

    def test_refuses_a_rate_of_zero(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            RequestRate(0)


class TestClientBudget:
    """Every request of one client goes through its budget, over real TLS to the fake API."""

    async def test_concurrent_calls_keep_the_rate(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order({"id": "ord-1", "lines": []})
        settings = tc_settings.model_copy(update={"max_requests_per_second": 5.0})
        async with TradecloudClient(settings, backoff=FAST) as tc:
            started = time.monotonic()
            await asyncio.gather(*(tc.get_order("ord-1") for _ in range(12)))
            elapsed = time.monotonic() - started
        calls = [c.at for c in fake_api.calls if c.path.startswith("/v2/") and c.at >= started]
        assert len(calls) >= 13  # the login and twelve orders (the logout may follow)
        assert most_in_one_second(calls) <= 5
        assert elapsed >= 2.0  # 13 requests at 5 per second need more than two seconds

    async def test_429_retry_after_pauses_every_caller(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order({"id": "ord-1", "lines": []})
        async with TradecloudClient(tc_settings, backoff=Backoff(initial=0.01, cap=5.0, jitter=0.0)) as tc:
            await tc.ping()  # logged in
            fake_api.fail("/v2/order/", 429, times=1, **{"Retry-After": "1"})
            first = asyncio.create_task(tc.get_order("ord-1"))
            await asyncio.sleep(0.3)  # the 429 has arrived; a second caller comes
            throttled_at = time.monotonic()
            second = await tc.get_order("ord-1")
            waited = time.monotonic() - throttled_at
            assert (await first)["id"] == second["id"] == "ord-1"
        assert [c.status for c in fake_api.calls_to("/v2/order/")] == [429, 200, 200]
        assert waited >= 0.5  # held until the Retry-After second had passed

    def test_setting_above_the_api_rule_is_refused(self, tc_settings: TradecloudSettings) -> None:
        with pytest.raises(ValueError, match="exceeds the 10 requests per second"):
            TradecloudSettings.model_validate({**tc_settings.model_dump(), "max_requests_per_second": 12})
        assert TradecloudSettings().max_requests_per_second == 8.0
