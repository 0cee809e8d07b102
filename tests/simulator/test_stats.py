"""Summary figures of a send run."""

from __future__ import annotations

from tcwebhook.simulator.sender import Outcome, SendAttempt
from tcwebhook.simulator.stats import Tally, percentile


def outcome(*statuses: int | None, latency: float = 0.01) -> Outcome:
    result = Outcome(label="E", method="POST", url="https://h/", message_id=None, duplicate=False)
    for n, status in enumerate(statuses, start=1):
        result.attempts.append(SendAttempt(n, status, None if status else "timeout", 0.0, latency))
    result.result = str(statuses[-1] or "timeout")
    return result


class TestTally:
    """Counts per final status, retries and nearest-rank percentiles."""

    def test_percentile(self) -> None:
        values = [float(v) for v in range(1, 101)]
        assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile(values, 100) == 100
        assert percentile([], 50) == 0

    def test_summary(self) -> None:
        tally = Tally()
        tally.start()
        tally.add(outcome(503, 200, latency=0.002))
        tally.add(outcome(400, latency=0.004))
        tally.add(outcome(None, None))
        tally.stop()
        summary = tally.summary(planned=5)
        assert summary["status"] == {"200": 1, "400": 1, "timeout": 1}
        assert summary["sent"] == 3 and summary["not_sent"] == 2
        assert summary["attempts"] == 5 and summary["retries"] == 2
        assert summary["accepted"] == 1 and summary["not_accepted"] == 2
        assert summary["latency_ms"] == {"p50": 2.0, "p90": 4.0, "p99": 4.0, "max": 4.0}
        assert not tally.all_accepted

    def test_all_accepted(self) -> None:
        tally = Tally()
        tally.add(outcome(204))
        assert tally.all_accepted
