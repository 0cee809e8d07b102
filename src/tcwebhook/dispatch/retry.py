"""Retry policy: exponential back-off with jitter, a cap per delay, and a give-up rule."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tcwebhook.config import DeliverySettings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_delay: float = 1.0
    max_delay: float = 300.0
    multiplier: float = 2.0
    jitter: float = 0.2  # each delay is spread by ±jitter (a fraction) so retries do not march in step
    max_attempts: int = 25
    max_age: float = 7 * 24 * 3600.0  # seconds since the event arrived

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> RetryPolicy:
        return cls(
            initial_delay=settings.initial_delay,
            max_delay=settings.max_delay,
            multiplier=settings.multiplier,
            jitter=settings.jitter,
            max_attempts=settings.max_attempts,
            max_age=settings.max_age,
        )

    def base_delay(self, attempt: int) -> float:
        """The delay after failed attempt ``attempt`` (1-based) before jitter, capped."""
        try:
            raw = self.initial_delay * self.multiplier ** max(attempt - 1, 0)
        except OverflowError:
            return self.max_delay
        return min(raw, self.max_delay)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt``; never above ``max_delay``."""
        base = self.base_delay(attempt)
        if self.jitter:
            spread = (rng or random).uniform(-self.jitter, self.jitter)
            base *= 1.0 + spread
        return min(max(base, 0.0), self.max_delay)

    def give_up(self, attempt: int, age: float) -> str | None:
        """Why to stop after failed attempt ``attempt`` of an event ``age`` seconds old, or None."""
        if attempt >= self.max_attempts:
            return f"gave up after {attempt} attempts"
        if age >= self.max_age:
            return f"gave up: the event is older than {self.max_age:g}s"
        return None
