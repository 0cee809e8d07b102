"""Back-off between attempts: one small immutable policy for every caller that retries.

Used by the dispatcher (deliveries to sinks, and its store writes), by the simulated sender
(``tcwebhook send``) and by the Tradecloud API client. The delay after failed attempt ``n``
(1-based) is ``initial * multiplier**(n - 1)``, spread by up to ``±jitter`` (a fraction) so that
many callers do not retry in step, and never more than ``cap``. ``max_attempts`` and ``max_age``
say when to stop; ``None`` means no such limit.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential back-off with jitter, a cap per delay, and a give-up rule."""

    initial: float = 1.0  # seconds after the first failed attempt, before jitter
    multiplier: float = 2.0
    cap: float = 300.0  # no delay is ever longer, jitter or Retry-After included
    jitter: float = 0.0  # each delay is spread by ±jitter (a fraction); 0 gives exact delays
    max_attempts: int | None = None  # attempts in all, the first one included
    max_age: float | None = None  # seconds since the work first arrived

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < 0:
            raise ValueError("initial and cap must be >= 0")
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.max_age is not None and self.max_age < 0:
            raise ValueError("max_age must be >= 0")

    def base_delay(self, attempt: int) -> float:
        """The delay after failed attempt ``attempt`` (1-based) before jitter, capped."""
        try:
            raw = self.initial * self.multiplier ** max(attempt - 1, 0)
        except OverflowError:
            return self.cap
        return min(raw, self.cap)

    def delay(self, attempt: int, rng: random.Random | None = None, *, at_least: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based); never more than ``cap``.

        ``at_least`` is a wait the other side asked for (an HTTP ``Retry-After``): honoured, but
        only up to the cap, and not shortened by jitter.
        """
        wait = self.base_delay(attempt)
        if self.jitter and wait:
            wait *= 1.0 + (rng or random).uniform(-self.jitter, self.jitter)
        if at_least is not None:
            wait = max(wait, at_least)
        # The cap is applied last, so neither jitter nor the other side can push a wait past it.
        return min(max(wait, 0.0), self.cap)

    def give_up(self, attempt: int, age: float = 0.0) -> str | None:
        """Why to stop after failed attempt ``attempt`` of work ``age`` seconds old, or None."""
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return f"gave up after {attempt} attempts"
        if self.max_age is not None and age >= self.max_age:
            return f"gave up: the event is older than {self.max_age:g}s"
        return None
