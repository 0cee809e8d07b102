"""What the pages show that is more than a field: pretty bodies, the arrivals chart, ages."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

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
class Tick:
    """A grid line with its label: ``at`` is the x (time axis) or y (count axis) position."""

    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """An inline SVG bar chart with axes and a grid (no script, no external asset: the CSP allows it).

    ``left``/``top``/``plot_width``/``plot_height`` place the plot inside the ``width`` x ``height``
    drawing; the margins hold the axis labels.
    """

    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    bars: tuple[Bar, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    peak: int
    total: int
    start: str
    end: str


def _nice_ceiling(peak: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``peak`` (and at least 1)."""
    top = 1
    while True:
        for factor in (1, 2, 5):
            if top * factor >= peak:
                return top * factor
        top *= 10


# Bars are never thinner or lower than this many units, so one event among hours of none shows.
_MIN_BAR_WIDTH = 2.0
_MIN_BAR_HEIGHT = 2.0


def arrivals_chart(
    buckets: Sequence[tuple[datetime, int]],
    *,
    since: datetime,
    bucket_seconds: int,
    now: datetime,
    width: int = 960,
    height: int = 200,
) -> Chart:
    """Bars per bucket from ``since`` to ``now`` (missing buckets are zero), a count axis, hour marks."""
    left, right, top, bottom = 44, 12, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    counts = {int(start.timestamp()) // bucket_seconds: n for start, n in buckets}
    first = int(since.timestamp()) // bucket_seconds
    last = int(now.timestamp()) // bucket_seconds
    slots = max(last - first + 1, 1)
    counts = {k: v for k, v in counts.items() if first <= k <= last}
    peak = max(counts.values(), default=0)
    axis_top = _nice_ceiling(peak)
    step = plot_w / slots
    bar_w = max(step - 0.5, _MIN_BAR_WIDTH)
    bars: list[Bar] = []
    for i in range(slots):
        n = counts.get(first + i, 0)
        if not n:
            continue
        h = max(plot_h * n / axis_top, _MIN_BAR_HEIGHT)
        start = datetime.fromtimestamp((first + i) * bucket_seconds, UTC)
        x = min(left + i * step, left + plot_w - bar_w)
        bars.append(Bar(round(x, 2), round(top + plot_h - h, 2), round(bar_w, 2), round(h, 2),
                        f"{when(start)} UTC: {n} events"))
    y_ticks = tuple(
        Tick(round(top + plot_h - plot_h * value / axis_top, 2), f"{value:,}")
        for value in sorted({0, axis_top // 2 if axis_top >= 2 else 0, axis_top})
    )
    x_ticks: list[Tick] = []
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    span = max(now.timestamp() - since.timestamp(), 1.0)
    while hour <= now:
        x_ticks.append(Tick(round(left + plot_w * (hour.timestamp() - since.timestamp()) / span, 2),
                            hour.strftime("%H:%M")))
        hour += timedelta(hours=1)
    end = now.astimezone(UTC)
    return Chart(width, height, left, top, plot_w, plot_h, tuple(bars), y_ticks, tuple(x_ticks), peak,
                 sum(counts.values()), when(since), when(end))


def hours_ago(hours: float, now: datetime) -> datetime:
    return now - timedelta(hours=hours)


REFRESH_SECONDS = 30  # the toggle's interval; a page is re-read by the browser, no script involved


def refresh_context(path: str, query: Mapping[str, str]) -> dict[str, object]:
    """``refresh`` (seconds or 0) and the links that turn it on and off, keeping the other parameters."""
    kept = {k: v for k, v in query.items() if k not in ("refresh", "note")}
    on = urlencode({**kept, "refresh": REFRESH_SECONDS})
    off = urlencode(kept)
    return {
        "refresh": REFRESH_SECONDS if query.get("refresh") == str(REFRESH_SECONDS) else 0,
        "refresh_on": f"{path}?{on}",
        "refresh_off": f"{path}?{off}" if off else path,
    }
