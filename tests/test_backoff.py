"""The one back-off policy: growth, jitter within bounds, a cap no delay exceeds, the give-up rule."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcwebhook.backoff import Backoff
from tcwebhook.config import DeliverySettings
from tcwebhook.dispatch import delivery_backoff
from tcwebhook.simulator import sender_backoff
from tcwebhook.tradecloud_api.client import DEFAULT_BACKOFF


class TestGrowth:
    """Delays grow by the multiplier from ``initial`` up to the cap."""

    def test_growth_and_cap(self) -> None:
        backoff = Backoff(initial=1, multiplier=2, cap=60)
        assert [backoff.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]

    def test_multiplier_one_is_a_constant_delay(self) -> None:
        backoff = Backoff(initial=5, multiplier=1, cap=60)
        assert {backoff.delay(n) for n in range(1, 20)} == {5}

    def test_huge_attempt_numbers_hit_the_cap(self) -> None:
        backoff = Backoff(initial=1, multiplier=2, cap=7, jitter=0.5)
        assert backoff.base_delay(10_000) == 7
        assert backoff.delay(10_000, random.Random(1)) <= 7

    def test_zero_initial_never_waits(self) -> None:
        assert Backoff(initial=0, jitter=1).delay(3) == 0


class TestJitter:
    """Jitter spreads each delay by ±jitter, reproducibly with a seeded generator."""

    def test_spread_within_bounds(self) -> None:
        backoff = Backoff(initial=10, multiplier=3, cap=1000, jitter=0.2)
        rng = random.Random(1)
        delays = [backoff.delay(3, rng) for _ in range(500)]
        assert all(72 <= d <= 108 for d in delays)
        assert max(delays) - min(delays) > 20  # really spread
        assert backoff.delay(3, random.Random(5)) == backoff.delay(3, random.Random(5))

    def test_at_the_cap_jitter_only_shortens(self) -> None:
        backoff = Backoff(initial=1, multiplier=2, cap=300, jitter=0.5)
        rng = random.Random(7)
        delays = [backoff.delay(n, rng) for n in range(10, 5000)]
        assert max(delays) <= 300 and min(delays) >= 150


class TestAtLeast:
    """A wait the other side asks for (Retry-After) is honoured up to the cap, never beyond."""

    def test_longer_wish_is_honoured(self) -> None:
        assert Backoff(initial=1, cap=20).delay(1, at_least=7) == 7

    def test_wish_beyond_the_cap_is_capped(self) -> None:
        assert Backoff(initial=1, cap=20, jitter=0.2).delay(1, at_least=3600) == 20

    def test_shorter_wish_keeps_the_back_off(self) -> None:
        assert Backoff(initial=4, cap=20).delay(2, at_least=1) == 8


@given(
    initial=st.floats(0, 1e6),
    multiplier=st.floats(1, 1e3),
    cap=st.floats(0, 1e6),
    jitter=st.floats(0, 1),
    attempt=st.integers(-5, 100_000),
    at_least=st.none() | st.floats(0, 1e9),
    seed=st.integers(0, 2**32),
)
def test_no_delay_exceeds_the_cap(
    initial: float, multiplier: float, cap: float, jitter: float, attempt: int, at_least: float | None, seed: int
) -> None:
    """Whatever the settings, attempt number, jitter draw or Retry-After: 0 <= delay <= cap."""
    backoff = Backoff(initial=initial, multiplier=multiplier, cap=cap, jitter=jitter)
    delay = backoff.delay(attempt, random.Random(seed), at_least=at_least)
    assert 0 <= delay <= cap


class TestGiveUp:
    """Give up after max_attempts or when the work is older than max_age; None means no limit."""

    @pytest.mark.parametrize(
        ("attempt", "age", "gives_up"),
        [(1, 0, False), (4, 0, False), (5, 0, True), (1, 99.9, False), (1, 100, True)],
    )
    def test_rule(self, attempt: int, age: float, gives_up: bool) -> None:
        backoff = Backoff(max_attempts=5, max_age=100)
        assert (backoff.give_up(attempt, age) is not None) is gives_up

    def test_reasons(self) -> None:
        backoff = Backoff(max_attempts=5, max_age=100)
        assert backoff.give_up(5) == "gave up after 5 attempts"
        assert backoff.give_up(1, 100) == "gave up: the event is older than 100s"

    def test_unbounded(self) -> None:
        assert Backoff().give_up(10**9, 1e12) is None

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"initial": -1}, "initial"),
            ({"cap": -1}, "cap"),
            ({"multiplier": 0.5}, "multiplier"),
            ({"jitter": 2}, "jitter"),
            ({"max_attempts": 0}, "max_attempts"),
            ({"max_age": -1}, "max_age"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, float], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            Backoff(**kwargs)  # type: ignore[arg-type]


class TestCallers:
    """Each caller builds its back-off from the settings and options it always had."""

    def test_delivery_settings(self) -> None:
        settings = DeliverySettings(initial_delay=2, max_delay=9, multiplier=3, jitter=0.1, max_attempts=7, max_age=50)
        assert delivery_backoff(settings) == Backoff(
            initial=2, multiplier=3, cap=9, jitter=0.1, max_attempts=7, max_age=50
        )

    def test_send_options(self) -> None:
        backoff = sender_backoff(max_retries=5, initial_wait=0.5, max_wait=5)
        assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]
        assert backoff.give_up(5) is None and backoff.give_up(6) is not None  # 5 retries, then stop
        assert sender_backoff(max_retries=0, initial_wait=1, max_wait=1).give_up(1) is not None

    def test_tradecloud_default(self) -> None:
        assert Backoff(initial=0.5, multiplier=2, cap=20, jitter=0.2) == DEFAULT_BACKOFF
