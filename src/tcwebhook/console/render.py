"""What the pages show that is more than a field: pretty bodies, the arrivals chart, ages."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tcwebhook.bodies import Readable, readable_body


def pretty_body(body: bytes, content_type: str) -> Readable:
    """The body for people: JSON and XML indented, a big one truncated as received."""
    return readable_body(body, content_type) or Readable(f"<{len(body)} bytes, not UTF-8: use the download>", "text")


async def pretty_body_off_loop(body: bytes, content_type: str) -> Readable:
    """``pretty_body`` in a thread: indenting even a bounded body takes milliseconds of CPU."""
    return await asyncio.to_thread(pretty_body, body, content_type)


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """``3m 12s`` since ``moment``."""
    if moment is None:
        return ""
    seconds = max(int(((now or datetime.now(UTC)) - moment).total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    """An inline SVG bar chart (no script, no external asset: the CSP allows it)."""

    width: int
    height: int
    bars: tuple[Bar, ...]
    peak: int
    total: int
    start: str
    end: str


def arrivals_chart(
    buckets: Sequence[tuple[datetime, int]],
    *,
    since: datetime,
    bucket_seconds: int,
    now: datetime,
    width: int = 720,
    height: int = 120,
) -> Chart:
    """Bars per bucket from ``since`` to ``now``; missing buckets are zero."""
    counts = {int(start.timestamp()) // bucket_seconds: n for start, n in buckets}
    first = int(since.timestamp()) // bucket_seconds
    last = int(now.timestamp()) // bucket_seconds
    slots = max(last - first + 1, 1)
    peak = max(counts.values(), default=0)
    step = width / slots
    bars: list[Bar] = []
    for i in range(slots):
        n = counts.get(first + i, 0)
        if not n:
            continue
        h = max(height * n / peak, 1.0)
        start = datetime.fromtimestamp((first + i) * bucket_seconds, UTC)
        bars.append(Bar(round(i * step, 2), round(height - h, 2), round(max(step - 0.5, 0.5), 2), round(h, 2),
                        f"{when(start)} UTC: {n} events"))
    end = now.astimezone(UTC)
    return Chart(width, height, tuple(bars), peak, sum(counts.values()), when(since), when(end))


def hours_ago(hours: float, now: datetime) -> datetime:
    return now - timedelta(hours=hours)
