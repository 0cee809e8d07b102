"""The shared waiting helper: returns the first truthy result, fails naming what was still wrong."""

from __future__ import annotations

import itertools
import time

import pytest
from tests.support.polling import NotInTime, eventually, eventually_async, holds_for


class TestEventually:
    """``eventually`` retries until the check holds, and no longer than its timeout."""

    def test_returns_first_truthy_result(self) -> None:
        counter = itertools.count()
        assert eventually(lambda: next(counter) >= 3 and "ready", timeout=5, interval=0.001) == "ready"

    def test_assertion_errors_mean_not_yet(self) -> None:
        calls = itertools.count(1)

        def check() -> int:
            n = next(calls)
            assert n >= 3, f"only {n} calls"
            return n

        assert eventually(check, timeout=5, interval=0.001) == 3

    def test_fails_with_the_last_assertion(self) -> None:
        def check() -> bool:
            raise AssertionError("the ERP has 2 of 3 orders")

        started = time.monotonic()
        with pytest.raises(NotInTime, match="the ERP has 2 of 3 orders"):
            eventually(check, timeout=0.2, interval=0.01)
        assert time.monotonic() - started < 5

    def test_fails_naming_the_last_result(self) -> None:
        with pytest.raises(NotInTime, match=r"delivered: not within 0.1 s \(last result: \[\]\)"):
            eventually(list, timeout=0.1, interval=0.01, what="delivered")

    def test_other_errors_are_not_swallowed(self) -> None:
        def check() -> bool:
            raise KeyError("bug in the test")

        with pytest.raises(KeyError):
            eventually(check, timeout=5)

    def test_holds_for(self) -> None:
        holds_for(lambda: True, 0.05, interval=0.01)
        start = time.monotonic()
        with pytest.raises(AssertionError, match="stopped holding"):
            holds_for(lambda: time.monotonic() - start < 0.02, 1, interval=0.01)


@pytest.mark.anyio
class TestEventuallyAsync:
    """The same for a coroutine check."""

    async def test_returns_and_fails(self) -> None:
        counter = itertools.count()

        async def check() -> bool:
            return next(counter) >= 2

        assert await eventually_async(check, timeout=5, interval=0.001) is True

        async def never() -> int:
            return 0

        with pytest.raises(NotInTime, match="never"):
            await eventually_async(never, timeout=0.1, interval=0.01)
