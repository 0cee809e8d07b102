"""The tcwebhook benchmark (``make bench``): throughput, latency, memory, TLS, sinks, inbox growth.

Servers run pinned to CPU 0, load generators to CPU 1 (``taskset``), everything on loopback.
Targets: tcwebhook in production mode (test CA, SQLite inbox with durable acks, files sink),
nginx answering 200 over TLS (the ceiling) and a parse-only ASGI app on tcwebhook's own server
stack. Generators: h2load (nghttp2-client, HTTP/1.1, one fixed body) and ``bench.loadgen``
(a unique messageId per request, so every request is a new durable event), plus ``tcwebhook send``.

    python bench/run.py            # full run, about 8 minutes
    python bench/run.py --quick    # about 2 minutes, smaller inbox and shorter runs

Results go to ``bench/results/<timestamp>.json`` and a table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog
from bench import report
from bench.body import order_event_template
from bench.growth import db_bytes, pending_events, prefill, stored_and_pending
from bench.h2load import run_h2load
from bench.machine import describe, git_revision, source_fingerprint
from bench.pki import Pki, make_pki
from bench.targets import (
    LOADGEN_CPU,
    REPO,
    CpuWatch,
    Target,
    free_port,
    minimal_target,
    nginx_target,
    ours_target,
    pinned,
    write_ours_config,
)

Json = dict[str, Any]
RESULTS_DIR = REPO / "bench" / "results"


@dataclass(frozen=True)
class Plan:
    duration: float
    warmup: float
    reps: int
    concurrencies: tuple[int, ...]
    handshake_requests: int
    send_count: int
    sink_events: int
    growth_sizes: tuple[int, ...]
    settle_limit: float
    sustained_s: float = 60.0


FULL = Plan(5, 1, 2, (16, 64), 3000, 3000, 20_000, (10_000, 1_000_000), 15)
QUICK = Plan(2, 1, 1, (16, 64), 1000, 1000, 5_000, (10_000, 100_000), 5, sustained_s=20.0)
SUSTAINED_SHARE = 0.8  # of the maximum stored rate


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- tools -------------------------------------------------------------------------------------


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def ensure_tools(notes: list[str]) -> tuple[str | None, str | None]:
    """h2load and nginx; installs Debian's nghttp2-client and nginx with apt-get when missing."""
    h2load, nginx = _which("h2load"), _which("nginx")
    if h2load and nginx:
        return h2load, nginx
    if os.geteuid() != 0 or not _which("apt-get"):
        notes.append("h2load/nginx missing and apt-get unavailable (not root?): those measurements skipped; "
                     "install them with `apt-get install -y nghttp2-client nginx`.")
        return h2load, nginx
    say("installing h2load and nginx: apt-get install -y nghttp2-client nginx")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "install", "-y", "nghttp2-client", "nginx"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600, check=False)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-5:])
        print(f"bench: apt-get could not install nghttp2-client and nginx:\n{tail}", file=sys.stderr)
        notes.append("apt-get install nghttp2-client nginx failed: h2load and nginx measurements skipped.")
    return _which("h2load"), _which("nginx")


# -- phases ------------------------------------------------------------------------------------


@dataclass
class Bench:
    plan: Plan
    work: Path
    pki: Pki
    body: Path
    results: Json
    h2load: str | None
    nginx: str | None
    serial_block: int = 0
    extra_targets: list[Target] = field(default_factory=list)  # servers started by later phases

    def next_serial_base(self) -> int:
        # Each loadgen run numbers its messageIds from its own block: runs never repeat an id.
        self.serial_block += 1
        return self.serial_block << 32

    def loadgen(self, target: Target, concurrency: int, *, unique: bool = True, duration: float | None = None,
                rate: float | None = None, warmup: float | None = None) -> Json:
        argv = [
            sys.executable, "-m", "bench.loadgen", "--url", target.url, "--body", str(self.body),
            "--ca", str(self.pki.ca), "--concurrency", str(concurrency),
            "--duration", str(duration or self.plan.duration),
            "--warmup", str(self.plan.warmup if warmup is None else warmup),
            "--serial-base", str(self.next_serial_base()),
        ]
        if rate is not None:
            argv += ["--rate", f"{rate:.1f}"]
        if unique:
            argv.append("--unique")
        for name, value in target.headers:
            argv += ["--header", f"{name}: {value}"]
        out = subprocess.run(
            pinned(LOADGEN_CPU, argv), capture_output=True, text=True, cwd=REPO,
            timeout=self.plan.warmup + (duration or self.plan.duration) + 60, check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
        result: Json = json.loads(out.stdout)
        return result

    def h2(self, target: Target, concurrency: int, *, keep_alive: bool = True) -> Json:
        result = run_h2load(
            url=target.url, body=self.body, headers=target.headers, concurrency=concurrency,
            duration=self.plan.duration, warmup=self.plan.warmup, keep_alive=keep_alive,
            requests=self.plan.handshake_requests,
        )
        return asdict(result)


def phase_throughput(bench: Bench, ours: Target, plan: list[tuple[Target, list[str]]]) -> None:
    """Keep-alive runs: each (target, generators) pair at each concurrency, ``reps`` times."""
    runs: list[Json] = bench.results.setdefault("runs", [])
    for rep in range(1, bench.plan.reps + 1):
        for conc in bench.plan.concurrencies:
            for target, generators in plan:
                for gen in generators:
                    if gen == "h2load" and not bench.h2load:
                        continue
                    # Delivery of the previous run's events must not overlap this run.
                    waited = ours.settle(bench.plan.settle_limit)
                    watch = CpuWatch(target)
                    result = bench.h2(target, conc) if gen == "h2load" else bench.loadgen(target, conc)
                    result.update(watch.done())
                    body = "unique" if gen == "loadgen" else "fixed"
                    result.update(target=target.name, generator=gen, body=body, rep=rep, settle_s=waited,
                                  loadavg_1m=round(os.getloadavg()[0], 2))
                    runs.append(result)
                    say(
                        f"{target.name:<17} {gen:<7} c={conc:<3} rep {rep}: {result['rps']:>8,.0f} req/s "
                        f"p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms {result['statuses']}"
                        + (f" errors {result['errors']}" if result["errors"] else "")
                        + f" CPU: server {result['server_cpu_pct']:.0f}%, other on CPU 0 "
                        f"{result['cpu0_other_pct']:.0f}%, CPU 1 {result['cpu1_busy_pct']:.0f}%"
                        + (f" (waited {waited} s for delivery)" if waited > 0.5 else "")
                    )


def phase_handshake(bench: Bench, targets: list[Target]) -> None:
    """No keep-alive: one full TLS handshake per request (h2load sends Connection: close)."""
    if not bench.h2load:
        return
    out: list[Json] = bench.results.setdefault("handshake", [])
    medians = report.median_runs(bench.results.get("runs", []))
    for target in targets:
        targets[-1].settle(bench.plan.settle_limit)
        watch = CpuWatch(target)
        result = bench.h2(target, 16, keep_alive=False)
        result.update(watch.done())
        keep = report.find(medians, target=target.name, generator="h2load", concurrency=16)
        # Server CPU per request without keep-alive minus with it: what one full handshake (with
        # its TCP connection) costs the server. Measured, so it holds whether or not the server
        # was the bottleneck of either run.
        per_hs = None
        if keep and keep["rps"] and result["rps"]:
            with_hs = result["server_cpu_pct"] * 10.0 / result["rps"]  # ms of CPU per request
            without = keep["server_cpu_pct"] * 10.0 / keep["rps"]
            per_hs = round(with_hs - without, 3)
        result.update(target=target.name, handshake_ms=per_hs)
        out.append(result)
        say(f"{target.name:<9} no keep-alive c=16: {result['rps']:,.0f} req/s, {per_hs} ms server CPU per handshake")


def phase_send(bench: Bench, ours: Target, token: str) -> None:
    """``tcwebhook send`` as the load generator: Tradecloud's own call pattern, unique events."""
    out: list[Json] = bench.results.setdefault("send", [])
    for conc in bench.plan.concurrencies:
        ours.settle(bench.plan.settle_limit)
        argv = [
            sys.executable, "-m", "tcwebhook.cli", "send", ours.url, "--token", token,
            "--ca-bundle", str(bench.pki.ca), "--events", "order", "--count", str(bench.plan.send_count),
            "--concurrency", str(conc), "--json", "--quiet",
        ]
        done = subprocess.run(
            pinned(LOADGEN_CPU, argv), capture_output=True, text=True, cwd=REPO, timeout=300, check=False
        )
        try:
            summary: Json = json.loads(done.stdout)
        except json.JSONDecodeError:
            bench.results.setdefault("notes", []).append(
                f"tcwebhook send c={conc} gave no JSON summary (exit {done.returncode}): {done.stderr[-300:]}"
            )
            continue
        lat = summary.get("latency_ms", {})
        row = {
            "concurrency": conc, "sent": summary.get("sent"), "status": summary.get("status", {}),
            "requests_per_s": summary.get("requests_per_s", 0.0), "p50_ms": lat.get("p50", 0.0),
            "p99_ms": lat.get("p99", 0.0), "elapsed_s": summary.get("elapsed_s"), "exit": done.returncode,
        }
        out.append(row)
        say(f"tcwebhook send c={conc}: {row['requests_per_s']:,.0f} req/s p99 {row['p99_ms']} ms {row['status']}")


def _drain_rate(bench: Bench, name: str, sink_toml: str, count: int) -> Json:
    """Pre-fill ``count`` pending events, start tcwebhook, time the dispatcher emptying the backlog."""
    port = free_port()
    layout = write_ours_config(bench.work / f"drain-{name}", bench.pki, port)
    config_text = layout.config.read_text()
    config_text = config_text[: config_text.index("[[sinks]]")] + sink_toml
    layout.config.write_text(config_text)
    template = order_event_template()
    asyncio.run(prefill(layout.config, layout.inbox_db, count, template, settle=False))
    target = ours_target(layout, port)
    bench.extra_targets.append(target)
    target.start(bench.pki.ca)
    try:
        start_pending, started = pending_events(layout.config), time.perf_counter()
        deadline = started + max(60.0, count / 200)
        left = start_pending
        while left > 0 and time.perf_counter() < deadline:
            time.sleep(0.5)
            left = pending_events(layout.config)
        took = time.perf_counter() - started
        bench.results.setdefault("peak_rss_mb", {}).setdefault("tcwebhook", []).append(target.peak_rss_mb())
    finally:
        target.stop()
    done = start_pending - left
    return {"events": done, "seconds": round(took, 2), "events_per_s": round(done / took, 1), "left": left}


def phase_sinks(bench: Bench) -> None:
    """Sink throughput alone (bench/sinks_throughput.py) and through the dispatcher (end to end)."""
    sinks: Json = bench.results.setdefault("sinks", {})
    script = REPO / "bench" / "sinks_throughput.py"
    if script.exists():
        done = subprocess.run(
            [sys.executable, str(script), "--events", str(max(500, bench.plan.sink_events // 10)),
             "--concurrency", "16"],
            capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
        )
        rates = {}
        for line in done.stdout.splitlines():
            found = re.match(r"^(.+?)\s{2,}([\d,]+) events/s", line)
            if found:
                rates[found.group(1).strip()] = float(found.group(2).replace(",", ""))
        sinks["in_process"] = rates
        if done.returncode != 0:
            bench.results.setdefault("notes", []).append(f"sinks_throughput.py exit {done.returncode}: "
                                                          f"{done.stderr[-300:]}")
    dispatcher: Json = sinks.setdefault("dispatcher", {})
    outbox = bench.work / "drain-outbox"
    files_toml = f'[[sinks]]\nname = "files"\ntype = "files"\ndirectory = "{outbox}"\n'
    dispatcher["files"] = _drain_rate(bench, "files", files_toml, bench.plan.sink_events)
    say(f"dispatcher → files sink: {dispatcher['files']['events_per_s']:,.0f} events/s")
    if script.exists():
        erp = subprocess.Popen(
            pinned(LOADGEN_CPU, [sys.executable, str(script), "--serve"]), stdout=subprocess.PIPE, text=True
        )
        try:
            assert erp.stdout is not None
            erp_port = int(erp.stdout.readline())
            http_toml = f'[[sinks]]\nname = "erp"\ntype = "http"\nurl = "http://127.0.0.1:{erp_port}/in"\n'
            dispatcher["http"] = _drain_rate(bench, "http", http_toml, bench.plan.sink_events)
            say(f"dispatcher → http sink: {dispatcher['http']['events_per_s']:,.0f} events/s")
        finally:
            erp.terminate()
            erp.wait(10)


def phase_sustained(bench: Bench, quick: bool) -> None:
    """Intake at 80 % of the maximum stored rate with the files sink: does delivery keep up?"""
    port = free_port()
    layout = write_ours_config(bench.work / "sustained", bench.pki, port)
    target = ours_target(layout, port, "tcwebhook-sustained")
    bench.extra_targets.append(target)
    seconds = bench.plan.sustained_s
    target.start(bench.pki.ca)
    try:
        # The maximum on this very server (files sink, concurrency 64), so both runs share its state.
        peak = bench.loadgen(target, 64)
        target.settle(bench.plan.settle_limit * 4)
        rate = round(SUSTAINED_SHARE * peak["rps"], 1)
        say(f"sustained: maximum {peak['rps']:,.0f} req/s stored; {seconds:.0f} s at {rate:,.0f} req/s"
            + (" (--quick: shortened from 60 s)" if quick else ""))
        stored0, pending0 = stored_and_pending(layout.config)
        samples: list[Json] = []
        started = time.perf_counter()
        with ThreadPoolExecutor(1) as pool:
            run = pool.submit(bench.loadgen, target, 64, duration=seconds, rate=rate, warmup=0.0)
            every = min(5.0, seconds / 6)
            next_sample = started + every
            # The end is read the moment the load stops: a sample's wait would count a drain
            # without intake as delivery under load.
            while not run.done() and time.perf_counter() - started < seconds + 90:
                time.sleep(0.1)
                if time.perf_counter() >= next_sample:
                    next_sample += every
                    stored, pending = stored_and_pending(layout.config)
                    samples.append({"t_s": round(time.perf_counter() - started, 1), "stored": stored - stored0,
                                    "backlog": pending})
            result = run.result()
        stored1, pending1 = stored_and_pending(layout.config)
        bench.results.setdefault("peak_rss_mb", {}).setdefault("tcwebhook", []).append(target.peak_rss_mb())
    finally:
        target.stop()
    stored_n = stored1 - stored0
    delivered_n = (stored1 - pending1) - (stored0 - pending0)
    row: Json = {
        "seconds": seconds, "shortened": quick, "max_rps": peak["rps"], "rate": rate, "achieved_rps": result["rps"],
        "p99_ms": result["p99_ms"], "statuses": result["statuses"], "stored": stored_n, "delivered": delivered_n,
        "backlog_start": pending0, "backlog_end": pending1,
        "backlog_max": max([pending1, *(s["backlog"] for s in samples)]), "samples": samples,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    bench.results["sustained"] = row
    say(f"sustained: {stored_n:,} stored, {delivered_n:,} delivered over {seconds:.0f} s "
        f"({result['rps']:,.0f} req/s achieved, p99 {result['p99_ms']} ms); backlog {pending1:,} at the end, "
        f"{row['backlog_max']:,} at most")


def phase_growth(bench: Bench) -> None:
    """Throughput with a small and a large pre-filled inbox (the same file, topped up)."""
    out: list[Json] = bench.results.setdefault("growth", [])
    port = free_port()
    layout = write_ours_config(bench.work / "growth", bench.pki, port)
    template = order_event_template()
    prefilled = 0
    added = 0  # events the measurements themselves stored
    for size in bench.plan.growth_sizes:
        say(f"growth: pre-filling {size - prefilled:,} events (inbox API, bulk)")
        filled = asyncio.run(
            prefill(layout.config, layout.inbox_db, size - prefilled, template,
                    first_serial=(1 << 44) + prefilled, progress=True)
        )
        prefilled = size
        before = db_bytes(layout.inbox_db)
        stored_before = prefilled + added
        target = ours_target(layout, port)
        bench.extra_targets.append(target)
        target.start(bench.pki.ca)
        try:
            reps = []
            for _ in range(bench.plan.reps):
                target.settle(bench.plan.settle_limit)
                watch = CpuWatch(target)
                reps.append(bench.loadgen(target, 64))
                reps[-1].update(watch.done())
            # Receiving is only half of it: how fast does the dispatcher deliver at this size?
            backlog, drain_started = pending_events(layout.config), time.perf_counter()
            left = backlog
            while left and time.perf_counter() - drain_started < bench.plan.settle_limit * 4:
                time.sleep(0.5)
                left = pending_events(layout.config)
            drained_s = time.perf_counter() - drain_started
            bench.results.setdefault("peak_rss_mb", {}).setdefault("tcwebhook", []).append(target.peak_rss_mb())
        finally:
            target.stop()
        added += sum(r["statuses"].get("202", 0) for r in reps)
        row = {
            "prefilled": size, "stored_before": stored_before,
            "rps": round(statistics.median(r["rps"] for r in reps), 1), "rps_all": [r["rps"] for r in reps],
            "p99_ms": round(statistics.median(r["p99_ms"] for r in reps), 2), "db_bytes": before,
            "server_cpu_pct": round(statistics.median(r["server_cpu_pct"] for r in reps), 1),
            "cpu0_other_pct": max(r["cpu0_other_pct"] for r in reps),
            "bytes_per_1000": round(before * 1000 / stored_before),
            "prefill_seconds": round(filled.store_seconds + filled.settle_seconds, 1),
            "backlog_after_run": backlog, "backlog_left": left,
            "drain_eps": round((backlog - left) / drained_s, 1) if backlog else None,
        }
        out.append(row)
        say(f"growth: {stored_before:,} stored: {row['rps']:,.0f} req/s p99 {row['p99_ms']} ms, "
            f"{row['bytes_per_1000']:,} bytes per 1,000 events; delivery backlog {backlog:,} after the run, "
            f"drained at {row['drain_eps']} events/s ({left:,} left)")


# -- main --------------------------------------------------------------------------------------


def summarise(results: Json) -> None:
    """Medians, ratios, headline figures and targets from the raw runs."""
    results["medians"] = report.median_runs(results.get("runs", []))
    results["ratios"] = report.ratios(results["medians"])
    for row in results.get("growth", []):
        row["rps"] = round(statistics.median(row["rps_all"]), 1)
    results["headline"] = report.headline(results)
    results["targets"] = report.evaluate(results["headline"])


def rerender(path: Path) -> int:
    results: Json = json.loads(path.read_text())
    summarise(results)
    path.write_text(json.dumps(results, indent=2))
    path.with_suffix(".md").write_text(report.markdown(results))
    report.print_report(results)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tcwebhook benchmark")
    parser.add_argument("--quick", action="store_true", help="about 2 minutes: shorter runs, 100k inbox")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["throughput", "handshake", "send", "sinks", "sustained", "growth", "postgres"],
                        help="skip a phase")
    parser.add_argument("--only", choices=["postgres"], default=None, help="run this phase alone")
    parser.add_argument("--pg-cpu", default="0", help="CPU the PostgreSQL server is pinned to (default 0, "
                        "with tcwebhook: the same one-core budget as SQLite)")
    parser.add_argument("--growth", default=None, help="inbox sizes for the growth phase, e.g. 10000,1000000")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results/<ts>.json)")
    parser.add_argument("--report", type=Path, default=None, metavar="JSON",
                        help="measure nothing: summarise an earlier results file again (tables, targets)")
    args = parser.parse_args(argv)
    if args.report is not None:
        return rerender(args.report)
    if args.only == "postgres":
        args.skip = ["throughput", "handshake", "send", "sinks", "sustained", "growth"]
    plan = QUICK if args.quick else FULL
    if args.growth:
        plan = replace(plan, growth_sizes=tuple(int(x) for x in args.growth.split(",")))
    # Per-event log lines of the in-process inbox (pre-fill) would measure the console.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    notes: list[str] = []
    h2load, nginx = ensure_tools(notes)
    started = datetime.now(UTC)
    results: Json = {
        "started": started.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "command": "python bench/run.py" + (" --quick" if args.quick else ""),
        "plan": asdict(plan),
        "machine": describe(),
        "source": {"git": git_revision(REPO), "fingerprint": source_fingerprint(REPO)},
        "pinning": {"servers": "taskset -c 0", "load generators": "taskset -c 1"},
        "notes": notes,
    }
    work = Path(tempfile.mkdtemp(prefix="tcwebhook-bench-"))
    say(f"work folder {work}; servers on CPU 0, load generators on CPU 1")
    pki = make_pki(work / "pki")
    template = order_event_template()
    body = work / "body.json"
    body.write_bytes(template.body)
    body.with_suffix(".ids.json").write_text(
        json.dumps({"message_id": template.message_id.decode(), "order_id": template.order_id.decode()})
    )
    results["body_bytes"] = len(template.body)
    bench = Bench(plan, work, pki, body, results, h2load, nginx)

    ours_port = free_port()
    layout = write_ours_config(work / "ours", pki, ours_port)
    ours = ours_target(layout, ours_port)
    # The same server without any sink: what receiving and storing alone cost.
    bare_port = free_port()
    bare = ours_target(write_ours_config(work / "bare", pki, bare_port, sink=False), bare_port, "tcwebhook-no-sink")
    others: list[Target] = [minimal_target(work / "minimal", pki, free_port())]
    if nginx:
        others.insert(0, nginx_target(work / "nginx", pki, free_port(), nginx))
    servers = [*others, ours, bare]
    t0 = time.monotonic()
    try:
        if {"throughput", "handshake", "send"} - set(args.skip):
            for target in servers:
                say(f"starting {target.name} on port {target.port}")
                target.start(pki.ca)
            if "throughput" not in args.skip:
                both = ["loadgen", "h2load"]
                phase_throughput(bench, ours, [*((t, both) for t in others), (ours, both), (bare, ["loadgen"])])
            results["medians"] = report.median_runs(results.get("runs", []))
            if "handshake" not in args.skip:
                phase_handshake(bench, [*others, ours])
            if "send" not in args.skip:
                phase_send(bench, ours, layout.token)
            rss = results.setdefault("peak_rss_mb", {})
            for target in servers:
                rss.setdefault(target.name, []).append(target.peak_rss_mb())
            for target in servers:
                target.stop()
            results["main_inbox_bytes"] = db_bytes(layout.inbox_db)
        if "sinks" not in args.skip:
            phase_sinks(bench)
        if "sustained" not in args.skip:
            phase_sustained(bench, args.quick)
        if "growth" not in args.skip:
            phase_growth(bench)
        if "postgres" not in args.skip:
            from bench.postgres import phase_postgres

            phase_postgres(bench, say, args.pg_cpu)
    except KeyboardInterrupt:
        notes.append("interrupted: partial results")
    finally:
        for target in servers:
            target.stop()
        results["elapsed_s"] = round(time.monotonic() - t0, 1)
        results["machine_end_loadavg"] = [round(x, 2) for x in os.getloadavg()]
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    started_with = {t.source for t in [*servers, *bench.extra_targets] if t.source}
    results["source"]["servers_started_with"] = sorted(started_with)
    if len(started_with | {results["source"]["fingerprint"]}) > 1:
        notes.append("the tcwebhook source changed during the run: servers started at different moments ran "
                     "different code, so their figures do not compare; run again on a quiet tree.")
    summarise(results)
    out = args.out or RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    out.with_suffix(".md").write_text(report.markdown(results))
    report.print_report(results)
    print(f"\nresults: {out} (tables as Markdown: {out.with_suffix('.md')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
