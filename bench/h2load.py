"""Running h2load (nghttp2-client) in HTTP/1.1 mode and reading its figures.

h2load prints throughput and mean latency only; p50/p99 come from its per-request log file
(``--log-file``: start time, status, microseconds to the end of the response), restricted to
the requests that started after the warm-up.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from bench.loadgen import LoadResult, percentile
from bench.targets import LOADGEN_CPU, pinned

_FINISHED = re.compile(r"finished in ([\d.]+)(ms|s|us), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout"
)
_CODES = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def h2load_version() -> str | None:
    try:
        out = subprocess.run(["h2load", "--version"], capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def run_h2load(
    *,
    url: str,
    body: Path,
    headers: list[tuple[str, str]],
    concurrency: int,
    duration: float,
    warmup: float,
    keep_alive: bool = True,
    requests: int | None = None,
) -> LoadResult:
    """One h2load run; with ``keep_alive=False`` it sends ``requests`` requests, one per connection."""
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        log = Path(tmp) / "requests.log"
        argv = ["h2load", "--h1", "-t", "1", "-c", str(concurrency), "--log-file", str(log), "-d", str(body)]
        for name, value in headers:
            argv += ["-H", f"{name}: {value}"]
        if keep_alive:
            argv += ["-D", f"{max(1, round(duration))}", "--warm-up-time", f"{max(1, round(warmup))}"]
        else:
            # Connection: close makes the server end each connection; h2load then opens a new one
            # (a new full handshake: h2load does not resume TLS sessions).
            argv += ["-H", "Connection: close", "-n", str(requests or concurrency * 100)]
        argv.append(url)
        out = subprocess.run(
            pinned(LOADGEN_CPU, argv),
            capture_output=True,
            text=True,
            timeout=warmup + duration + 120,
            check=False,
        )
        text = out.stdout + out.stderr
        finished = _FINISHED.search(text)
        counts = _REQUESTS.search(text)
        codes = _CODES.search(text)
        if out.returncode != 0 or finished is None or counts is None:
            raise RuntimeError(f"h2load failed ({out.returncode}):\n{text[-2000:]}")
        took = float(finished.group(1)) / {"s": 1.0, "ms": 1e3, "us": 1e6}[finished.group(2)]
        latencies = _latencies(log)
    done, errored, timeout = int(counts.group(3)), int(counts.group(6)), int(counts.group(7))
    statuses: dict[str, int] = {}
    if codes:
        for label, value in zip(("2xx", "3xx", "4xx", "5xx"), codes.groups(), strict=True):
            if int(value):
                statuses[label] = int(value)
    lat = sorted(latencies)
    return LoadResult(
        concurrency=concurrency,
        duration=round(took, 3),
        requests=done,
        rps=float(finished.group(3)),
        p50_ms=round(percentile(lat, 0.50), 3),
        p90_ms=round(percentile(lat, 0.90), 3),
        p99_ms=round(percentile(lat, 0.99), 3),
        max_ms=round(lat[-1], 3) if lat else 0.0,
        statuses=statuses,
        errors=errored + timeout + int(counts.group(5)),
        keep_alive=keep_alive,
    )


def _latencies(log: Path) -> list[float]:
    """Per-request latencies in ms; with a warm-up, h2load logs only the measured period."""
    values: list[float] = []
    try:
        text = log.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[2].isdigit():
            values.append(int(fields[2]) / 1000.0)
    return values
