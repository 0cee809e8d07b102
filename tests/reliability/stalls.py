"""Measuring what an attack costs the event loop: a ``/healthz`` probe beside it, server CPU and RSS.

The probe asks ``/healthz`` on one keep-alive TLS connection every ``interval`` seconds from a
thread; the slowest answer is how long the loop that answers Tradecloud was held. CPU is the
server process's user + system time during the attack (``psutil``), memory the growth of its
peak RSS (``VmHWM``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]


@dataclass
class Probe:
    url: str
    ca: Path
    interval: float = 0.02
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        # Wait for a first answer, so the attack starts with the connection up.
        deadline = time.monotonic() + 10
        while not self.latencies and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        del self.latencies[:1]  # the first answer includes the TLS handshake

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(verify=str(self.ca), timeout=30) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    client.get(self.url + "/healthz")
                except httpx.HTTPError:
                    self.failures += 1
                self.latencies.append(time.perf_counter() - started)
                self._stop.wait(self.interval)

    @property
    def worst_ms(self) -> float:
        return max(self.latencies, default=0.0) * 1000

    @property
    def median_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[len(ordered) // 2] * 1000 if ordered else 0.0


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Cost:
    """What one attack cost the server, filled in when the ``measured`` block ends."""

    name: str
    stall_ms: float = 0.0
    median_ms: float = 0.0
    probes: int = 0
    cpu_s: float = 0.0
    rss_growth_mb: float = 0.0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.name}: /healthz worst {self.stall_ms:.0f} ms (median {self.median_ms:.1f} ms, "
            f"{self.probes} probes), server CPU {self.cpu_s:.2f} s, peak RSS +{self.rss_growth_mb:.0f} MB, "
            f"attack {self.seconds:.2f} s"
        )


@contextlib.contextmanager
def measured(name: str, base_url: str, ca: Path, pid: int) -> Iterator[Cost]:
    """Probe ``/healthz`` while the block runs; the figures are printed and left in the ``Cost``."""
    cost = Cost(name)
    proc = psutil.Process(pid)
    probe = Probe(base_url, ca)
    probe.start()
    cpu = proc.cpu_times()
    rss = peak_rss_mb(pid)
    started = time.perf_counter()
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - started
        time.sleep(0.1)  # one more probe after the attack's last request
        probe.stop()
        after = proc.cpu_times()
        cost.cpu_s = (after.user - cpu.user) + (after.system - cpu.system)
        cost.rss_growth_mb = peak_rss_mb(pid) - rss
        cost.stall_ms, cost.median_ms, cost.probes = probe.worst_ms, probe.median_ms, len(probe.latencies)
        print(cost.line())
