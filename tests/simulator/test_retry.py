"""The retry policy object: which outcomes are retried and how long to wait."""

from __future__ import annotations

import random

import pytest

from tcwebhook.simulator.retry import RetryPolicy, Verdict, classify


class TestClassify:
    """Contract §2: 2xx done; 4xx and 500 final; > 500 and no answer retried."""

    @pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
    def test_done(self, status: int) -> None:
        assert classify(status) is Verdict.DONE

    @pytest.mark.parametrize("status", [100, 301, 302, 400, 401, 403, 404, 409, 422, 429, 499, 500])
    def test_final(self, status: int) -> None:
        assert classify(status) is Verdict.FINAL

    @pytest.mark.parametrize("status", [501, 502, 503, 504, 599, None])
    def test_retry(self, status: int | None) -> None:
        assert classify(status) is Verdict.RETRY


class TestPolicy:
    """Exponential back-off, capped per wait, bounded in count."""

    def test_schedule_doubles_and_caps(self) -> None:
        assert RetryPolicy(max_retries=6, initial_wait=0.5, max_wait=5).schedule() == [0.5, 1, 2, 4, 5, 5]

    def test_should_retry_bounded(self) -> None:
        policy = RetryPolicy(max_retries=2)
        assert policy.should_retry(503, 0) and policy.should_retry(None, 1)
        assert not policy.should_retry(503, 2)
        assert not policy.should_retry(500, 0) and not policy.should_retry(200, 0)

    def test_zero_retries(self) -> None:
        assert not RetryPolicy(max_retries=0).should_retry(503, 0)

    def test_huge_attempt_count_hits_the_cap(self) -> None:
        assert RetryPolicy(max_wait=7).wait(10_000) == 7

    def test_jitter_only_shortens(self) -> None:
        policy = RetryPolicy(initial_wait=1, jitter=0.5)
        rng = random.Random(1)
        waits = [policy.wait(0, rng) for _ in range(50)]
        assert all(0.5 <= w <= 1 for w in waits) and len(set(waits)) > 1

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"max_retries": -1}, "max_retries"),
            ({"initial_wait": -1}, "waits"),
            ({"multiplier": 0.5}, "multiplier"),
            ({"jitter": 2}, "jitter"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, float], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]
