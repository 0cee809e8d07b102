"""The retry policy: exponential growth, jitter within bounds, a cap, and the give-up rule."""

from __future__ import annotations

import random

import pytest

from tcwebhook.config import DeliverySettings
from tcwebhook.dispatch import RetryPolicy


class TestBackOff:
    """Delays grow by the multiplier up to the cap; jitter spreads them within bounds."""

    def test_growth_and_cap(self) -> None:
        policy = RetryPolicy(initial_delay=1, max_delay=60, multiplier=2, jitter=0)
        assert [policy.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]

    def test_cap_holds_with_jitter_and_huge_attempts(self) -> None:
        policy = RetryPolicy(initial_delay=1, max_delay=300, multiplier=2, jitter=0.5)
        rng = random.Random(7)
        delays = [policy.delay(n, rng) for n in range(1, 5000)]
        assert max(delays) <= 300
        assert policy.base_delay(10_000) == 300

    def test_jitter_spreads_within_bounds(self) -> None:
        policy = RetryPolicy(initial_delay=10, max_delay=1000, multiplier=3, jitter=0.2)
        rng = random.Random(1)
        delays = [policy.delay(3, rng) for _ in range(500)]
        assert all(72 <= d <= 108 for d in delays)
        assert max(delays) - min(delays) > 20  # really spread
        assert policy.delay(3, random.Random(5)) == policy.delay(3, random.Random(5))

    def test_multiplier_one_is_a_constant_delay(self) -> None:
        policy = RetryPolicy(initial_delay=5, max_delay=60, multiplier=1, jitter=0)
        assert {policy.delay(n) for n in range(1, 20)} == {5}


class TestGiveUp:
    """Give up after max_attempts or when the event is older than max_age."""

    @pytest.mark.parametrize(
        ("attempt", "age", "gives_up"),
        [(1, 0, False), (4, 0, False), (5, 0, True), (1, 99.9, False), (1, 100, True)],
    )
    def test_rule(self, attempt: int, age: float, gives_up: bool) -> None:
        policy = RetryPolicy(max_attempts=5, max_age=100)
        assert (policy.give_up(attempt, age) is not None) is gives_up

    def test_from_settings(self) -> None:
        settings = DeliverySettings(initial_delay=2, max_delay=9, multiplier=3, jitter=0.1, max_attempts=7, max_age=50)
        assert RetryPolicy.from_settings(settings) == RetryPolicy(2, 9, 3, 0.1, 7, 50)
