"""Counting a send run: final results per status code, retries and latency percentiles."""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcwebhook.simulator.sender import Outcome


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Tally:
    """Accumulates outcomes; ``summary()`` is what the CLI prints (or dumps as JSON)."""

    def __init__(self) -> None:
        self.results: Counter[str] = Counter()
        self.latencies: list[float] = []  # seconds, one per attempt that got a response
        self.events = 0
        self.accepted = 0
        self.attempts = 0
        self.duplicates = 0
        self.refusal: str | None = None
        self._started = time.perf_counter()
        self._stopped: float | None = None

    def start(self) -> None:
        self._started = time.perf_counter()
        self._stopped = None

    def stop(self, *, refusal: str | None = None) -> None:
        self._stopped = time.perf_counter()
        self.refusal = refusal

    @property
    def elapsed(self) -> float:
        end = self._stopped if self._stopped is not None else time.perf_counter()
        return end - self._started

    def add(self, outcome: Outcome) -> None:
        self.events += 1
        self.accepted += outcome.accepted
        self.duplicates += outcome.duplicate
        self.results[outcome.result] += 1
        self.attempts += len(outcome.attempts)
        self.latencies.extend(a.latency for a in outcome.attempts if a.status is not None)

    @property
    def all_accepted(self) -> bool:
        return self.events > 0 and self.accepted == self.events and self.refusal is None

    def summary(self, planned: int | None = None) -> dict[str, Any]:
        """Plain data: counts, ``status`` per final result, ``latency_ms`` percentiles, rates."""
        ordered = sorted(self.latencies)
        elapsed = self.elapsed
        planned = self.events if planned is None else planned
        return {
            "planned": planned,
            "sent": self.events,
            "not_sent": max(0, planned - self.events),
            "accepted": self.accepted,
            "not_accepted": self.events - self.accepted,
            "duplicates": self.duplicates,
            "attempts": self.attempts,
            "retries": self.attempts - self.events,
            "status": dict(sorted(self.results.items())),
            "latency_ms": {
                name: round(percentile(ordered, p) * 1000, 2)
                for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
            },
            "elapsed_s": round(elapsed, 3),
            "requests_per_s": round(self.attempts / elapsed, 1) if elapsed > 0 else 0.0,
            "events_per_s": round(self.events / elapsed, 1) if elapsed > 0 else 0.0,
            "refusal": self.refusal,
        }
