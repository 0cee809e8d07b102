"""Tradecloud's documented retry rule as a tiny, testable policy (contract §2).

2xx is done; 4xx and 500 are final failures; anything above 500, a timeout or a dropped
connection is retried with exponential back-off. Tradecloud retries forever; a simulator has to
stop, so ``max_retries`` bounds it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    """What the sender does after one attempt."""

    DONE = "done"  # 2xx
    FINAL = "final"  # failed; resending is assumed to fail again
    RETRY = "retry"  # temporary failure


def classify(status: int | None) -> Verdict:
    """The verdict for an HTTP status, or ``None`` for a timeout / connection error."""
    if status is None or status > 500:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DONE
    return Verdict.FINAL


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off: ``initial_wait * multiplier**n``, capped by ``max_wait``."""

    max_retries: int = 5
    initial_wait: float = 0.5
    max_wait: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.0  # fraction of each wait drawn at random, 0 = exact waits

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.initial_wait < 0 or self.max_wait < 0:
            raise ValueError("waits must be >= 0")
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def should_retry(self, status: int | None, retries_done: int) -> bool:
        """Whether to try again after an attempt that got ``status`` (``None``: no answer)."""
        return classify(status) is Verdict.RETRY and retries_done < self.max_retries

    def wait(self, retries_done: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retries_done + 1``."""
        try:
            base = min(self.max_wait, self.initial_wait * self.multiplier**retries_done)
        except OverflowError:
            base = self.max_wait
        if self.jitter and base:
            base -= base * self.jitter * (rng or random).random()
        return base

    def schedule(self) -> list[float]:
        """Every wait, in order, when all retries are needed (what ``--help`` can show)."""
        return [self.wait(n) for n in range(self.max_retries)]
