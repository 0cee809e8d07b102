"""The PostgreSQL store next to SQLite in the same run: store-and-ack, dispatcher drain, per-event cost.

A throw-away PostgreSQL 15 cluster (``tests/support/postgres.py``, fsync and full_page_writes on, like a
production server) runs pinned to the server CPU (``PG_CPU``, default CPU 0 with tcwebhook: the
same one-core budget as the SQLite figures, where the storage engine runs inside tcwebhook), or
to another CPU with ``--pg-cpu``. Measured:

- store-and-ack: ``tcwebhook serve`` without sinks, SQLite then PostgreSQL, unique events from
  ``bench.loadgen`` at each concurrency, ``reps`` times; p50/p99 per request;
- per stored event on the database: WAL bytes (``pg_stat_wal``) and the CPU of all PostgreSQL
  processes, from the store-and-ack runs;
- dispatcher throughput: pending events pre-filled through the inbox API, then ``tcwebhook worker``
  ×1, ×2 and ×4 (files sink) timed from the first worker ready to claim until nothing is pending,
  each worker's start-up CPU left out; SQLite ×1 for reference.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil  # type: ignore[import-untyped]
import psycopg
from bench.body import order_event_template
from bench.growth import pending_events, prefill
from bench.targets import REPO, SERVER_CPU, CpuWatch, Target, free_port, ours_target, pinned, write_ours_config

if TYPE_CHECKING:
    from bench.run import Bench

Json = dict[str, Any]


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


class _DbCpu:
    """CPU of every process of the cluster since ``start`` (backends that connect later count in full)."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.before = {pid: _cpu([pid]) for pid in cluster.server_pids()}

    def spent(self) -> float:
        return sum(_cpu([pid]) - self.before.get(pid, 0.0) for pid in self.cluster.server_pids())


def _wal_bytes(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()
    return int(row[0]) if row else 0


def _with_store(layout_config: Path, url: str) -> None:
    layout_config.write_text(layout_config.read_text() + f'[store]\nurl = "{url}"\n')


def _drain(bench: Bench, name: str, url: str | None, workers: int, count: int, say: Any,
           cluster: Any = None) -> Json:
    """Pre-fill ``count`` pending events, start ``workers`` workers, time until none is pending;
    with the CPU the workers (and the database) spent per delivered event."""
    layout = write_ours_config(bench.work / f"pg-drain-{name}", bench.pki, free_port())
    if url is not None:
        _with_store(layout.config, url)
    asyncio.run(prefill(layout.config, layout.inbox_db, count, order_event_template(), settle=False))
    procs: list[subprocess.Popen[bytes]] = []
    logs = [layout.directory / f"worker-{i}.log" for i in range(workers)]
    started = time.perf_counter()
    left = pending_events(layout.config)
    db_watch = _DbCpu(cluster) if cluster is not None else None
    worker_cpu = startup_cpu = 0.0
    try:
        for log_path in logs:
            log = log_path.open("ab")
            argv = [sys.executable, "-m", "tcwebhook.cli", "worker", "--config", str(layout.config)]
            procs.append(subprocess.Popen(pinned(SERVER_CPU, argv), stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
        # A worker's start (imports, connecting, the schema check) costs about a second of CPU:
        # not delivery. The clock starts when the first worker can claim, and each worker's CPU
        # until it could is left out (a later worker's start still competes for the core).
        ready: set[int] = set()
        until = time.perf_counter() + 60
        while len(ready) < workers and time.perf_counter() < until:
            for i, (proc, log_path) in enumerate(zip(procs, logs, strict=True)):
                if i not in ready and b"dispatcher_started" in log_path.read_bytes():
                    startup_cpu += _cpu([proc.pid])
                    if not ready:
                        started = time.perf_counter()
                        db_watch = _DbCpu(cluster) if cluster is not None else None
                    ready.add(i)
            time.sleep(0.005)
        deadline = started + max(120.0, count / 50)
        while left > 0 and time.perf_counter() < deadline:
            time.sleep(0.25)
            left = pending_events(layout.config)
    finally:
        took = time.perf_counter() - started
        db_cpu = db_watch.spent() if db_watch is not None else 0.0
        worker_cpu = _cpu([p.pid for p in procs]) - startup_cpu
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    done = count - left
    row = {"store": "postgresql" if url else "sqlite", "workers": workers, "events": done,
           "seconds": round(took, 2), "events_per_s": round(done / took, 1), "left": left,
           "worker_cpu_ms_per_event": round(1000 * worker_cpu / max(done, 1), 3),
           "db_cpu_ms_per_event": round(1000 * db_cpu / max(done, 1), 3)}
    say(f"dispatcher on {row['store']} ×{workers} workers → files sink: {row['events_per_s']:,.0f} events/s")
    return row


def phase_postgres(bench: Bench, say: Any, pg_cpu: str = SERVER_CPU) -> None:
    sys.path.insert(0, str(REPO))
    from tests.support.postgres import new_cluster

    out: Json = bench.results.setdefault("postgres", {"pg_cpu": pg_cpu})
    cluster = new_cluster(fsync=True, cpu=pg_cpu, shared_buffers="256MB", max_wal_size="2GB")
    targets: list[Target] = []
    try:
        url = cluster.url(cluster.create_database())
        out["server"] = cluster.sql("SHOW server_version")
        lite_port, pg_port = free_port(), free_port()
        lite = ours_target(
            write_ours_config(bench.work / "pg-cmp-sqlite", bench.pki, lite_port, sink=False), lite_port,
            "sqlite-no-sink",
        )
        pg_layout = write_ours_config(bench.work / "pg-cmp-postgres", bench.pki, pg_port, sink=False)
        _with_store(pg_layout.config, url)
        pg = ours_target(pg_layout, pg_port, "postgres-no-sink")
        targets = [lite, pg]
        for target in targets:
            target.start(bench.pki.ca)
        runs: list[Json] = out.setdefault("runs", [])
        for rep in range(1, bench.plan.reps + 1):
            for conc in bench.plan.concurrencies:
                for target in targets:
                    target.settle(bench.plan.settle_limit)
                    wal0, db_watch = _wal_bytes(url), _DbCpu(cluster)
                    watch = CpuWatch(target)
                    result = bench.loadgen(target, conc)
                    result.update(watch.done())
                    stored = int(result["statuses"].get("202", 0))
                    wal, pgcpu = _wal_bytes(url) - wal0, db_watch.spent()
                    if target is pg and stored:
                        # Warm-up requests are stored too but not counted: a slight over-estimate.
                        result["wal_bytes_per_event"] = round(wal / stored)
                        result["pg_cpu_ms_per_event"] = round(1000 * pgcpu / stored, 4)
                    result.update(target=target.name, rep=rep, concurrency=conc)
                    runs.append(result)
                    say(
                        f"{target.name:<17} c={conc:<3} rep {rep}: {result['rps']:>8,.0f} req/s "
                        f"p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms {result['statuses']}"
                        + (f" WAL {result.get('wal_bytes_per_event')} B/event, PG CPU "
                           f"{result.get('pg_cpu_ms_per_event')} ms/event" if target is pg else "")
                    )
        for target in targets:
            target.stop()
        summary: list[Json] = out.setdefault("summary", [])
        for conc in bench.plan.concurrencies:
            row: Json = {"concurrency": conc}
            for target in targets:
                mine = [r for r in runs if r["target"] == target.name and r["concurrency"] == conc]
                if not mine:
                    continue
                key = "sqlite" if target is lite else "postgres"
                row[f"{key}_rps"] = round(statistics.median(r["rps"] for r in mine), 1)
                row[f"{key}_p99_ms"] = round(statistics.median(r["p99_ms"] for r in mine), 2)
                row[f"{key}_server_cpu_pct"] = round(statistics.median(r["server_cpu_pct"] for r in mine), 1)
                # CPU per stored event (server CPU ÷ rate): robust to a machine busy with other work.
                row[f"{key}_cpu_ms_per_event"] = round(
                    statistics.median(r["server_cpu_pct"] * 10.0 / r["rps"] for r in mine if r["rps"]), 4
                )
                if key == "postgres":
                    row["wal_bytes_per_event"] = round(statistics.median(r.get("wal_bytes_per_event", 0) for r in mine))
                    row["pg_cpu_ms_per_event"] = round(
                        statistics.median(r.get("pg_cpu_ms_per_event", 0.0) for r in mine), 4
                    )
            if row.get("sqlite_rps"):
                row["postgres_vs_sqlite"] = round(row.get("postgres_rps", 0.0) / row["sqlite_rps"], 3)
            if row.get("postgres_cpu_ms_per_event"):
                # Events per CPU-second, PostgreSQL (tcwebhook + database) against SQLite: the ratio
                # of what one dedicated core would sustain.
                total = row["postgres_cpu_ms_per_event"] + row.get("pg_cpu_ms_per_event", 0.0)
                row["cpu_capacity_ratio"] = round(row.get("sqlite_cpu_ms_per_event", 0.0) / total, 3)
            summary.append(row)
            say(f"store-and-ack c={conc}: PostgreSQL {row.get('postgres_rps')} req/s vs SQLite "
                f"{row.get('sqlite_rps')} req/s = {row.get('postgres_vs_sqlite')}; CPU per event "
                f"{row.get('postgres_cpu_ms_per_event')} + {row.get('pg_cpu_ms_per_event')} (database) ms vs "
                f"{row.get('sqlite_cpu_ms_per_event')} ms = capacity ratio {row.get('cpu_capacity_ratio')}")
        count = max(2000, bench.plan.sink_events // 4)
        drains: list[Json] = out.setdefault("dispatcher", [])
        drains.append(_drain(bench, "sqlite-1", None, 1, count, say))
        for workers in (1, 2, 4):
            drain_url = cluster.url(cluster.create_database())
            drains.append(_drain(bench, f"pg-{workers}", drain_url, workers, count, say, cluster))
    finally:
        for target in targets:
            target.stop()
        cluster.destroy()


def markdown(results: Json) -> list[str]:
    """The PostgreSQL section of the Markdown report."""
    pg = results.get("postgres")
    if not pg:
        return []
    lines = [
        "",
        f"## PostgreSQL store (server {pg.get('server', '?')}, pinned to CPU {pg.get('pg_cpu')})",
        "",
        "| concurrency | SQLite req/s | SQLite p99 ms | PostgreSQL req/s | PostgreSQL p99 ms | PG / SQLite |"
        " tcwebhook CPU ms/event (SQLite / PG) | database CPU ms/event | capacity ratio | WAL bytes/event |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in pg.get("summary", []):
        lines.append(
            f"| {row['concurrency']} | {row.get('sqlite_rps', 0):,.0f} | {row.get('sqlite_p99_ms')} | "
            f"{row.get('postgres_rps', 0):,.0f} | {row.get('postgres_p99_ms')} | {row.get('postgres_vs_sqlite')} | "
            f"{row.get('sqlite_cpu_ms_per_event')} / {row.get('postgres_cpu_ms_per_event')} | "
            f"{row.get('pg_cpu_ms_per_event')} | {row.get('cpu_capacity_ratio')} | {row.get('wal_bytes_per_event')} |"
        )
    lines += [
        "",
        "| store | workers | events | seconds | events/s | worker CPU ms/event | database CPU ms/event |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in pg.get("dispatcher", []):
        lines.append(
            f"| {row['store']} | {row['workers']} | {row['events']:,} | {row['seconds']} | {row['events_per_s']:,.0f} "
            f"| {row.get('worker_cpu_ms_per_event')} | {row.get('db_cpu_ms_per_event')} |"
        )
    return lines
