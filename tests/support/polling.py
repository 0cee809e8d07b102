"""One way to wait for a condition: ``eventually`` (and ``eventually_async``), bounded in time.

The check is called until it returns a truthy value, which is returned; an ``AssertionError``
raised by the check counts as "not yet". When time runs out the last assertion (or a sentence
naming the check and what it last returned) is raised, so a failure says what was still wrong.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL = 0.05


class NotInTime(AssertionError):
    """The condition did not hold within the time given."""


def _fail(check: object, timeout: float, last: object, error: AssertionError | None, what: str | None) -> NotInTime:
    name = what or getattr(check, "__name__", repr(check))
    if error is not None:
        return NotInTime(f"{name}: not within {timeout:g} s: {error}")
    return NotInTime(f"{name}: not within {timeout:g} s (last result: {last!r})")


def eventually(
    check: Callable[[], T], timeout: float = 10.0, *, interval: float = INTERVAL, what: str | None = None
) -> T:
    """``check()`` once it is truthy; ``NotInTime`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        error: AssertionError | None = None
        result: T | None = None
        try:
            result = check()
        except AssertionError as exc:
            error = exc
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            raise _fail(check, timeout, result, error, what) from error
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], Awaitable[T]],
    timeout: float = 10.0,  # noqa: ASYNC109 - how long to poll, not a cancellation scope
    *,
    interval: float = INTERVAL,
    what: str | None = None,
) -> T:
    """``await check()`` once it is truthy; ``NotInTime`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        error: AssertionError | None = None
        result: T | None = None
        try:
            result = await check()
        except AssertionError as exc:
            error = exc
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            raise _fail(check, timeout, result, error, what) from error
        await asyncio.sleep(interval)


def holds_for(check: Callable[[], object], duration: float, *, interval: float = INTERVAL) -> None:
    """Assert ``check()`` stays truthy for ``duration`` seconds (for "nothing happens" checks)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert check(), f"{getattr(check, '__name__', 'condition')} stopped holding"
        time.sleep(interval)
