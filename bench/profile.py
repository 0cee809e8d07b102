"""Where a request's CPU goes: cProfile over a real ``tcwebhook serve`` under load.

Starts ``tcwebhook serve`` (production config of the benchmark: test CA, SQLite inbox with durable
acks, JSON logs, no sink, so the dispatcher stays out of the figures) pinned to CPU 0 twice: once
under cProfile with every thread profiled on its own CPU clock, once plain. ``bench.loadgen`` on
CPU 1 sends first one fixed body (every request after the first is a duplicate) and then unique
bodies (every request is stored and fsync'd). The profiled server snapshots its profiles on
SIGUSR1 before and after each load run; the difference, divided by the requests the server
counted in between (its own ``tcwebhook_requests_total``), is the cost of one request, split into
the parts of the request path. cProfile slows Python code more than C code, so each part is also
given as its share of the plain server's measured CPU per request (``µs scaled``); compare
ratios within one run only. The plain server's CPU is also split by thread (from /proc): the
event loop's, and the others together (mostly the inbox writer's).

    python bench/profile.py                  # about 40 seconds
    python bench/profile.py --duration 10 --concurrency 64 --top 25
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import cProfile

# Run as a script, this folder comes first on sys.path, and this file would stand in for the
# standard library's ``profile`` that cProfile imports: cProfile is imported after this.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

Json = dict[str, Any]

# The parts of the request path, in the order a request meets them.
PARTS = (
    "TLS, sockets, event loop (uvloop, C)",
    "gate (connection limits)",
    "HTTP parsing (httptools, uvicorn)",
    "asyncio tasks (Python)",
    "auth",
    "body read",
    "decoding",
    "JSON/tXML parse",
    "validation (pydantic)",
    "contract drift walk",
    "receiver glue (routing, NewEvent)",
    "inbox (lookup, insert, commit)",
    "logging",
    "metrics",
    "response",
    "dispatcher (not the request path)",
    "other",
)

_FILE_PARTS: tuple[tuple[str, str], ...] = (
    ("/tcwebhook/transport/gate.py", "gate (connection limits)"),
    ("/tcwebhook/transport/tls.py", "TLS, sockets, event loop (uvloop, C)"),
    ("/tcwebhook/transport/protocol.py", "HTTP parsing (httptools, uvicorn)"),
    ("/uvicorn/", "HTTP parsing (httptools, uvicorn)"),
    ("/httptools/", "HTTP parsing (httptools, uvicorn)"),
    ("/tcwebhook/auth/", "auth"),
    ("/hmac.py", "auth"),
    ("/tcwebhook/receiver/encoding.py", "decoding"),
    ("/asyncio/timeouts.py", "body read"),
    ("/tcwebhook/contract/txml.py", "JSON/tXML parse"),
    ("/tcwebhook/contract/parse.py", "JSON/tXML parse"),
    ("/tcwebhook/contract/drift.py", "contract drift walk"),
    ("/tcwebhook/contract/", "validation (pydantic)"),
    ("/pydantic", "validation (pydantic)"),
    ("/tcwebhook/inbox/", "inbox (lookup, insert, commit)"),
    ("/sqlite3/", "inbox (lookup, insert, commit)"),
    ("/concurrent/futures/", "inbox (lookup, insert, commit)"),
    ("/queue.py", "inbox (lookup, insert, commit)"),
    ("/structlog/", "logging"),
    ("/tcwebhook/logs.py", "logging"),
    ("/logging/", "logging"),
    ("/prometheus_client/", "metrics"),
    ("/tcwebhook/receiver/metrics.py", "metrics"),
    ("/tcwebhook/dispatch/", "dispatcher (not the request path)"),
    ("/tcwebhook/sinks/", "dispatcher (not the request path)"),
    ("/tcwebhook/reconcile/", "dispatcher (not the request path)"),
    ("/asyncio/", "asyncio tasks (Python)"),
)
_RECEIVER_PARTS = {
    "_read_body": "body read",
    "_authenticate": "auth",
    "_json": "response",
    "_raw": "response",
    "_acknowledge": "response",
}
_BUILTIN_PARTS: tuple[tuple[str, str], ...] = (
    ("uvloop.loop", "TLS, sockets, event loop (uvloop, C)"),
    ("_ssl.", "TLS, sockets, event loop (uvloop, C)"),
    ("pydantic_core", "validation (pydantic)"),
    ("sqlite3", "inbox (lookup, insert, commit)"),
)


def part_of_code(code: CodeType) -> str:
    """The part of the request path a Python function belongs to."""
    filename = code.co_filename.replace(os.sep, "/")
    if filename.endswith("/tcwebhook/receiver/app.py"):
        return _RECEIVER_PARTS.get(code.co_name, "receiver glue (routing, NewEvent)")
    for fragment, part in _FILE_PARTS:
        if fragment in filename:
            return part
    return "other"


def part_of_builtin(name: str) -> str | None:
    """A C function's own part, or None when it takes its caller's (``orjson.loads`` in parse...)."""
    for fragment, part in _BUILTIN_PARTS:
        if fragment in name:
            return part
    return None


def _label(code: CodeType | str) -> str:
    if isinstance(code, str):
        return code
    return f"{code.co_filename.rpartition(os.sep)[2]}:{code.co_firstlineno}({code.co_name})"


def summarise_profiles(profilers: list[cProfile.Profile]) -> Json:
    """Seconds of own CPU time by part and by function over every thread's profile so far."""
    parts: dict[str, float] = dict.fromkeys(PARTS, 0.0)
    functions: dict[str, float] = {}
    for profiler in profilers:
        for entry in profiler.getstats():
            code = entry.code
            if not isinstance(code, str):
                parts[part_of_code(code)] += entry.inlinetime
                functions[_label(code)] = functions.get(_label(code), 0.0) + entry.inlinetime
            else:
                functions[code] = functions.get(code, 0.0) + entry.inlinetime
                own = part_of_builtin(code)
                if own is not None:
                    parts[own] += entry.inlinetime
            # A C function's time goes to the part of the Python function that called it.
            for sub in entry.calls or ():
                if isinstance(sub.code, str) and part_of_builtin(sub.code) is None:
                    caller = part_of_code(code) if not isinstance(code, str) else "other"
                    parts[caller] += sub.inlinetime
    return {"parts": parts, "functions": functions}


# -- the profiled server (child process) -------------------------------------------------------


def run_profiled(snapshots: Path, argv: list[str]) -> None:
    """Run ``tcwebhook <argv>`` with every thread under cProfile; SIGUSR1 writes a snapshot."""
    import cProfile

    profilers: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profiler = cProfile.Profile(time.thread_time)
        with lock:
            profilers.append(profiler)
        profiler.enable()
        try:
            original_run(self)
        finally:
            profiler.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    counter = iter(range(1_000_000))

    main = cProfile.Profile(time.thread_time)

    def snapshot(_sig: int, _frame: object) -> None:
        # The main thread is profiled from the first snapshot on: profiling the imports and the
        # start-up under load would take minutes.
        with lock:
            if main in profilers:
                main.disable()  # the snapshot's own work is no part of any request
            else:
                profilers.append(main)
            summary = summarise_profiles(list(profilers))
            path = snapshots / f"{next(counter)}.json"
            path.with_suffix(".tmp").write_text(json.dumps(summary))
            path.with_suffix(".tmp").rename(path)
            main.enable()

    signal.signal(signal.SIGUSR1, snapshot)
    sys.argv = ["tcwebhook", *argv]
    try:
        runpy.run_module("tcwebhook.cli", run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        main.disable()


# -- the driver --------------------------------------------------------------------------------


def _requests_counted(url: str, token: str, ca: Path) -> int:
    """The server's own count of answered webhook requests (``tcwebhook_requests_total``)."""
    base = url.split("/tradecloud/")[0]
    request = urllib.request.Request(  # noqa: S310 - an https URL on loopback
        f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    context = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(request, context=context, timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    pattern = r'^tcwebhook_requests_total\{route="(?:orders|shipments)",status="\d+"\} ([0-9.e+]+)$'
    return int(sum(float(m) for m in re.findall(pattern, text, re.MULTILINE)))


def thread_cpu(pid: int) -> tuple[float, float, float, float]:
    """CPU seconds of a process: the event loop's thread (the main one, user and system), then
    all its other threads together (the inbox writer, readers, sinks; user and system)."""
    from bench.targets import thread_times

    main, others = [0.0, 0.0], [0.0, 0.0]
    for tid, (user, system) in thread_times(pid).items():
        into = main if tid == pid else others
        into[0] += user
        into[1] += system
    return main[0], main[1], others[0], others[1]


def _wait_for(path: Path, timeout: float = 20.0) -> Json:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the profiled server wrote no snapshot {path.name}")
        time.sleep(0.05)
    data: Json = json.loads(path.read_text())
    return data


def _difference(before: Json, after: Json, requests: int) -> Json:
    per = 1e6 / max(1, requests)
    parts = {k: (after["parts"][k] - before["parts"].get(k, 0.0)) * per for k in after["parts"]}
    functions = {
        k: (v - before["functions"].get(k, 0.0)) * per for k, v in after["functions"].items()
    }
    return {"parts_us": parts, "functions_us": functions, "requests": requests}


def measure(args: argparse.Namespace, work: Path) -> Json:
    from bench.body import order_event_template
    from bench.pki import make_pki
    from bench.targets import LOADGEN_CPU, REPO, CpuWatch, free_port, ours_target, pinned, write_ours_config

    pki = make_pki(work / "pki")
    template = order_event_template()
    body = work / "body.json"
    body.write_bytes(template.body)
    body.with_suffix(".ids.json").write_text(
        json.dumps({"message_id": template.message_id.decode(), "order_id": template.order_id.decode()})
    )
    serial = iter(range(1, 1000))

    def load(target: Any, unique: bool) -> Json:
        argv = [
            sys.executable, "-m", "bench.loadgen", "--url", target.url, "--body", str(body),
            "--ca", str(pki.ca), "--concurrency", str(args.concurrency), "--duration", str(args.duration),
            "--warmup", "0.5", "--serial-base", str(next(serial) << 32),
        ]
        if unique:
            argv.append("--unique")
        for name, value in target.headers:
            argv += ["--header", f"{name}: {value}"]
        done = subprocess.run(pinned(LOADGEN_CPU, argv), capture_output=True, text=True, cwd=REPO,
                              timeout=args.duration + 60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"loadgen failed: {done.stderr[-2000:]}")
        result: Json = json.loads(done.stdout)
        return result

    modes = (("duplicate", False), ("stored", True))
    results: Json = {"modes": {}}
    # The plain server first: its CPU per request is what the profile's shares are scaled to.
    port = free_port()
    layout = write_ours_config(work / "plain", pki, port, sink=False)
    plain = ours_target(layout, port, "plain")
    plain.start(pki.ca)
    try:
        for mode, unique in modes:
            load(plain, unique)  # warm-up: the duplicate's first store, caches, the collector
            before = _requests_counted(plain.url, layout.token, pki.ca)
            watch = CpuWatch(plain)
            assert plain.proc is not None
            threads0 = thread_cpu(plain.proc.pid)
            cpu0 = plain.cpu_seconds()
            run = load(plain, unique)
            cpu = plain.cpu_seconds() - cpu0
            threads = [after - start for after, start in zip(thread_cpu(plain.proc.pid), threads0, strict=True)]
            counted = _requests_counted(plain.url, layout.token, pki.ca) - before
            per_request = [round(seconds * 1e6 / max(1, counted), 1) for seconds in threads]
            results["modes"][mode] = {
                "plain_rps": run["rps"], "plain_p99_ms": run["p99_ms"], "statuses": run["statuses"],
                "plain_cpu_us": round(cpu * 1e6 / max(1, counted), 1), "plain_threads_us": per_request,
                **watch.done(),
            }
    finally:
        plain.stop()

    port = free_port()
    layout = write_ours_config(work / "profiled", pki, port, sink=False)
    snapshots = work / "snapshots"
    snapshots.mkdir()
    profiled = ours_target(layout, port, "profiled")
    profiled.argv = [sys.executable, str(Path(__file__).resolve()), "--child", str(snapshots), "--",
                     "serve", "--config", str(layout.config)]
    profiled.start(pki.ca)
    index = 0
    try:
        for mode, unique in modes:
            load(profiled, unique)
            before_count = _requests_counted(profiled.url, layout.token, pki.ca)
            assert profiled.proc is not None
            os.kill(profiled.proc.pid, signal.SIGUSR1)
            first = _wait_for(snapshots / f"{index}.json")
            cpu0 = profiled.cpu_seconds()
            run = load(profiled, unique)
            cpu = profiled.cpu_seconds() - cpu0
            os.kill(profiled.proc.pid, signal.SIGUSR1)
            after = _wait_for(snapshots / f"{index + 1}.json")
            index += 2
            counted = _requests_counted(profiled.url, layout.token, pki.ca) - before_count - 1
            row = results["modes"][mode]
            row.update(_difference(first, after, counted))
            row.update(profiled_rps=run["rps"], profiled_cpu_us=round(cpu * 1e6 / max(1, counted), 1))
    finally:
        profiled.stop()
    return results


def _table(results: Json, top: int) -> str:
    modes = list(results["modes"])
    lines = ["| part | " + " | ".join(f"{m} µs (profiled) | {m} µs scaled | {m} %" for m in modes) + " |",
             "| --- |" + " ---: |" * (3 * len(modes))]
    totals = {m: sum(results["modes"][m]["parts_us"].values()) for m in modes}
    for part in PARTS:
        cells = []
        for m in modes:
            row = results["modes"][m]
            us = row["parts_us"].get(part, 0.0)
            share = us / totals[m] if totals[m] else 0.0
            cells.append(f"{us:,.1f} | {share * row['plain_cpu_us']:,.1f} | {share * 100:.1f}")
        if any(results["modes"][m]["parts_us"].get(part, 0.0) >= 0.05 for m in modes):
            lines.append(f"| {part} | " + " | ".join(cells) + " |")
    lines.append("| **total (profile)** | " + " | ".join(
        f"{totals[m]:,.1f} | {results['modes'][m]['plain_cpu_us']:,.1f} | 100" for m in modes) + " |")
    out = ["\n".join(lines), ""]
    for m in modes:
        row = results["modes"][m]
        out.append(
            f"{m}: plain server {row['plain_rps']:,.0f} req/s, {row['plain_cpu_us']:,.1f} µs CPU per request "
            f"(process), p99 {row['plain_p99_ms']:.2f} ms, {row['statuses']}; profiled {row['profiled_rps']:,.0f} "
            f"req/s, {row['profiled_cpu_us']:,.1f} µs CPU per request; {row['requests']:,} requests profiled; "
            f"CPU 0 other {row['cpu0_other_pct']:.0f}%"
        )
        loop_user, loop_system, other_user, other_system = row["plain_threads_us"]
        out.append(
            f"{m}: plain server per request, event-loop thread {loop_user:,.1f} µs user + {loop_system:,.1f} µs "
            f"system, other threads (inbox writer...) {other_user:,.1f} µs user + {other_system:,.1f} µs system"
        )
    for m in modes:
        ranked = sorted(results["modes"][m]["functions_us"].items(), key=lambda kv: -kv[1])[:top]
        out.append(f"\n{m}: top {top} functions by own time (profiled µs per request)")
        out.extend(f"  {us:8.2f}  {name}" for name, us in ranked)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        run_profiled(Path(argv[1]), argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of load per run (default 4)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--top", type=int, default=20, help="functions listed per mode")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tcwebhook-profile-"))
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    results = measure(args, work)
    results.update(started=started, loadavg=[round(x, 2) for x in os.getloadavg()],
                   concurrency=args.concurrency, duration=args.duration)
    print(f"tcwebhook request profile, {started}, concurrency {args.concurrency}, {args.duration} s per run, "
          f"load average {results['loadavg']}")
    print(_table(results, args.top))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
