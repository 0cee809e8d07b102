"""Summing up a benchmark run: medians over repetitions, ratios, targets met or missed, tables."""

from __future__ import annotations

import statistics
from typing import Any

from rich.console import Console
from rich.table import Table

Json = dict[str, Any]

# The goals of the performance work; "where" says which figure each is checked against. Ratios are
# taken within one run, same generator and concurrency.
TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("dup_ratio_c16", ">=", 0.40, "duplicates (h2load, fixed body) / parse-only app, concurrency 16"),
    ("dup_ratio_c64", ">=", 0.40, "duplicates (h2load, fixed body) / parse-only app, concurrency 64"),
    ("stored_ratio_c16", ">=", 0.30, "stored, no sink (loadgen, unique) / parse-only app, concurrency 16"),
    ("stored_ratio_c64", ">=", 0.30, "stored, no sink (loadgen, unique) / parse-only app, concurrency 64"),
    ("files_ratio_c16", ">=", 0.80, "stored with the files sink / without a sink, concurrency 16"),
    ("files_ratio_c64", ">=", 0.80, "stored with the files sink / without a sink, concurrency 64"),
    ("p99_c16_ms", "<=", 10.0, "p99 latency with the files sink at concurrency 16, ms"),
    ("p99_c64_ms", "<=", 25.0, "p99 latency with the files sink at concurrency 64, ms"),
    ("sustained_ratio", ">=", 1.0, "sustained ingest at 80 % of the maximum, files sink: delivered / stored"),
    ("pg_vs_sqlite", ">=", 0.70, "PostgreSQL store-and-ack / SQLite (lower of concurrency 16 and 64)"),
    ("pg_db_cpu_ratio", "<=", 1.0, "PostgreSQL CPU per delivered event / per stored event (1 worker)"),
    ("pg_two_workers", ">=", 1.60, "PostgreSQL delivery, 2 workers / 1 worker, events/s"),
    ("peak_rss_mb", "<=", 150.0, "tcwebhook peak RSS over the whole run, MiB"),
    ("growth_ratio", ">=", 0.90, "requests/s with the large inbox / with 10k stored events"),
)


DISTURBED_PCT = 10.0  # other load on the server's CPU above which a repetition is set aside


def median_runs(runs: list[Json]) -> list[Json]:
    """One row per (target, generator, body, concurrency): the median over repetitions."""
    groups: dict[tuple[str, str, str, int], list[Json]] = {}
    for run in runs:
        groups.setdefault((run["target"], run["generator"], run["body"], run["concurrency"]), []).append(run)
    rows = []
    for (target, generator, body, conc), all_reps in groups.items():
        # A repetition during which other work took CPU 0 measures the machine, not the server:
        # leave it out when an undisturbed one exists (it stays in the JSON and is counted here).
        clean = [r for r in all_reps if r.get("cpu0_other_pct", 0.0) <= DISTURBED_PCT]
        group = clean or all_reps
        rows.append(
            {
                "target": target,
                "generator": generator,
                "body": body,
                "concurrency": conc,
                "reps": len(group),
                "disturbed_reps_left_out": len(all_reps) - len(group),
                "rps": round(statistics.median(r["rps"] for r in group), 1),
                "rps_all": [r["rps"] for r in all_reps],
                "p50_ms": round(statistics.median(r["p50_ms"] for r in group), 2),
                "p99_ms": round(statistics.median(r["p99_ms"] for r in group), 2),
                "errors": sum(r["errors"] for r in group),
                "server_cpu_pct": round(statistics.median(r.get("server_cpu_pct", 0.0) for r in group), 0),
                "cpu0_other_pct": round(max(r.get("cpu0_other_pct", 0.0) for r in group), 0),
                "cpu1_busy_pct": round(statistics.median(r.get("cpu1_busy_pct", 0.0) for r in group), 0),
                "statuses": _merge(r["statuses"] for r in group),
            }
        )
    return rows


def _merge(items: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for item in items:
        for key, value in item.items():
            total[key] = total.get(key, 0) + value
    return total


def find(rows: list[Json], **match: Any) -> Json | None:
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def ratios(rows: list[Json]) -> list[Json]:
    """ours / nginx and ours / minimal for each generator and concurrency."""
    out = []
    for row in rows:
        if not row["target"].startswith("tcwebhook"):
            continue
        for ref in ("nginx", "minimal"):
            other = find(rows, target=ref, generator=row["generator"], concurrency=row["concurrency"])
            if other and other["rps"]:
                out.append(
                    {
                        "target": row["target"],
                        "generator": row["generator"],
                        "body": row["body"],
                        "concurrency": row["concurrency"],
                        "versus": ref,
                        "ratio": round(row["rps"] / other["rps"], 3),
                    }
                )
    return out


def _ratio(top: Json | None, bottom: Json | None) -> float | None:
    return round(top["rps"] / bottom["rps"], 3) if top and bottom and bottom["rps"] else None


def headline(results: Json) -> Json:
    """The figures the targets are checked against (None when a phase did not run)."""
    rows = results.get("medians", [])
    growth = results.get("growth", [])
    figures: Json = {}
    for c in (16, 64):
        ours = find(rows, target="tcwebhook", generator="loadgen", concurrency=c)
        bare = find(rows, target="tcwebhook-no-sink", generator="loadgen", concurrency=c)
        figures[f"dup_ratio_c{c}"] = _ratio(
            find(rows, target="tcwebhook", generator="h2load", concurrency=c),
            find(rows, target="minimal", generator="h2load", concurrency=c),
        )
        figures[f"stored_ratio_c{c}"] = _ratio(bare, find(rows, target="minimal", generator="loadgen", concurrency=c))
        figures[f"files_ratio_c{c}"] = _ratio(ours, bare)
        figures[f"p99_c{c}_ms"] = ours["p99_ms"] if ours else None
    sustained = results.get("sustained")
    figures["sustained_ratio"] = (
        round(sustained["delivered"] / sustained["stored"], 3) if sustained and sustained.get("stored") else None
    )
    pg = results.get("postgres", {})
    pg_ratios = [r["postgres_vs_sqlite"] for r in pg.get("summary", []) if r.get("postgres_vs_sqlite") is not None]
    figures["pg_vs_sqlite"] = min(pg_ratios) if pg_ratios else None
    drains = {r["workers"]: r for r in pg.get("dispatcher", []) if r.get("store") == "postgresql"}
    stored_cpu = [r["pg_cpu_ms_per_event"] for r in pg.get("summary", []) if r.get("pg_cpu_ms_per_event")]
    figures["pg_db_cpu_ratio"] = (
        round(drains[1]["db_cpu_ms_per_event"] / statistics.median(stored_cpu), 3)
        if 1 in drains and stored_cpu and drains[1].get("db_cpu_ms_per_event") is not None else None
    )
    figures["pg_two_workers"] = (
        round(drains[2]["events_per_s"] / drains[1]["events_per_s"], 3)
        if 1 in drains and 2 in drains and drains[1]["events_per_s"] else None
    )
    rss = [v for v in results.get("peak_rss_mb", {}).get("tcwebhook", []) if v is not None]
    figures["peak_rss_mb"] = max(rss) if rss else None
    figures["growth_ratio"] = (
        round(growth[-1]["rps"] / growth[0]["rps"], 3) if len(growth) >= 2 and growth[0]["rps"] else None
    )
    figures["growth_sizes"] = [g["stored_before"] for g in growth]
    return figures


def evaluate(figures: Json) -> list[Json]:
    checks = []
    for name, op, goal, where in TARGETS:
        value = figures.get(name)
        met = None if value is None else (value >= goal if op == ">=" else value <= goal)
        checks.append({"name": name, "target": f"{op} {goal:g}", "measured": value, "met": met, "what": where})
    return checks


def print_report(results: Json, console: Console | None = None) -> None:
    console = console or Console(highlight=False, width=140)
    m = results["machine"]
    src = results.get("source", {})
    console.print(f"\n[bold]Source[/bold] {src.get('git')} fingerprint {src.get('fingerprint')}")
    console.print(
        f"[bold]Machine[/bold] {m['nproc']} CPU {m['cpu_model']}, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}, {m['openssl']}, SQLite {m['sqlite']}; load average at start {m['loadavg']}"
    )
    table = Table(title="Keep-alive HTTPS, 4 KB order event (median of repetitions)", header_style="bold")
    for col in ("target", "generator", "body", "conc.", "req/s", "p50 ms", "p99 ms", "srv CPU%", "other%",
                "statuses", "errors"):
        table.add_column(col, justify="right" if col not in ("target", "generator", "body", "statuses") else "left")
    for row in results.get("medians", []):
        table.add_row(
            row["target"], row["generator"], row["body"], str(row["concurrency"]), f"{row['rps']:,.0f}",
            f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}", f"{row.get('server_cpu_pct', 0):.0f}",
            f"{row.get('cpu0_other_pct', 0):.0f}", _codes(row["statuses"]), str(row["errors"]),
        )
    console.print(table)

    if results.get("ratios"):
        table = Table(title="Ratios (tcwebhook / reference, same generator and concurrency)", header_style="bold")
        for col in ("target", "generator", "body", "conc.", "versus", "ratio"):
            table.add_column(col)
        for r in results["ratios"]:
            table.add_row(
                r["target"], r["generator"], r["body"], str(r["concurrency"]), r["versus"], f"{r['ratio']:.2f}"
            )
        console.print(table)

    if results.get("handshake"):
        table = Table(title="One full TLS handshake per request (no keep-alive, h2load)", header_style="bold")
        for col in ("target", "conc.", "req/s", "p50 ms", "p99 ms", "server CPU ms / handshake"):
            table.add_column(col)
        for h in results["handshake"]:
            table.add_row(
                h["target"], str(h["concurrency"]), f"{h['rps']:,.0f}", f"{h['p50_ms']:.2f}", f"{h['p99_ms']:.2f}",
                "-" if h.get("handshake_ms") is None else f"{h['handshake_ms']:.2f}",
            )
        console.print(table)

    if results.get("send"):
        table = Table(title="tcwebhook send (simulator samples, unique events)", header_style="bold")
        for col in ("conc.", "events", "req/s", "p50 ms", "p99 ms", "statuses"):
            table.add_column(col)
        for s in results["send"]:
            table.add_row(
                str(s["concurrency"]), str(s.get("sent")), f"{s.get('requests_per_s', 0):,.0f}",
                f"{s.get('p50_ms', 0):.2f}", f"{s.get('p99_ms', 0):.2f}", _codes(s.get("status", {})),
            )
        console.print(table)

    sinks = results.get("sinks", {})
    if sinks:
        table = Table(title="Sink delivery throughput", header_style="bold")
        table.add_column("path")
        table.add_column("events/s", justify="right")
        for name, value in sinks.get("dispatcher", {}).items():
            table.add_row(f"dispatcher → {name} sink ({value['events']} events)", f"{value['events_per_s']:,.0f}")
        for label, rate in sinks.get("in_process", {}).items():
            table.add_row(f"sink alone: {label}", f"{rate:,.0f}")
        console.print(table)

    if results.get("growth"):
        table = Table(title="Inbox growth (unique events, concurrency 64)", header_style="bold")
        for col in ("stored events", "req/s", "p99 ms", "backlog after", "delivered/s", "bytes / 1,000 ev.",
                    "prefill s"):
            table.add_column(col, justify="right")
        for g in results["growth"]:
            table.add_row(
                f"{g['stored_before']:,}", f"{g['rps']:,.0f}", f"{g['p99_ms']:.2f}",
                f"{g.get('backlog_after_run', 0):,}", str(g.get("drain_eps")),
                f"{g['bytes_per_1000']:,}", f"{g['prefill_seconds']:.0f}",
            )
        console.print(table)

    sus = results.get("sustained")
    if sus:
        table = Table(title=f"Sustained ingest, files sink, {sus['seconds']:.0f} s at {sus['rate']:,.0f} req/s "
                      f"(80 % of {sus['max_rps']:,.0f})" + (" — shortened by --quick" if sus.get("shortened") else ""),
                      header_style="bold")
        for col in ("achieved req/s", "p99 ms", "stored", "delivered", "backlog at end", "backlog max"):
            table.add_column(col, justify="right")
        table.add_row(f"{sus['achieved_rps']:,.0f}", f"{sus['p99_ms']:.2f}", f"{sus['stored']:,}",
                      f"{sus['delivered']:,}", f"{sus['backlog_end']:,}", f"{sus['backlog_max']:,}")
        console.print(table)

    table = Table(title="Targets", header_style="bold")
    for col in ("target", "goal", "measured", "result"):
        table.add_column(col)
    for check in results.get("targets", []):
        result = {True: "[green]met[/green]", False: "[red]missed[/red]", None: "not measured"}[check["met"]]
        table.add_row(check["what"], check["target"], str(check["measured"]), result)
    console.print(table)
    for note in results.get("notes", []):
        console.print(f"[yellow]note[/yellow] {note}")


def _codes(statuses: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(statuses.items()))


def markdown(results: Json) -> str:
    """The result tables as Markdown, for docs/performance.md."""
    out: list[str] = []

    def table(header: list[str], rows: list[list[str]]) -> None:
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(" --- " for _ in header) + "|")
        out.extend("| " + " | ".join(row) + " |" for row in rows)
        out.append("")

    src, m = results.get("source", {}), results["machine"]
    out.append(
        f"Run {results['started']} ({results['mode']}, `{results['command']}`, {results['elapsed_s']} s); source "
        f"{src.get('git')} / {src.get('fingerprint')}; load average at start {m['loadavg']}, "
        f"at end {results.get('machine_end_loadavg')}.\n"
    )
    out.append("### Keep-alive HTTPS, 4 KB order event\n")
    table(
        ["target", "generator", "body", "concurrency", "requests/s", "p50 ms", "p99 ms", "server CPU %",
         "other load on CPU 0 %", "generator CPU 1 %", "statuses"],
        [
            [r["target"], r["generator"], r["body"], str(r["concurrency"]),
             f"{r['rps']:,.0f}" + (f" ({' / '.join(f'{x:,.0f}' for x in r['rps_all'])})" if len(r["rps_all"]) > 1
                                   else "")
             + (f" ({r['disturbed_reps_left_out']} disturbed left out)" if r.get("disturbed_reps_left_out") else ""),
             f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r.get('server_cpu_pct', 0):.0f}",
             f"{r.get('cpu0_other_pct', 0):.0f}", f"{r.get('cpu1_busy_pct', 0):.0f}", _codes(r["statuses"])]
            for r in results.get("medians", [])
        ],
    )
    if results.get("ratios"):
        out.append("### Ratios\n")
        table(
            ["target", "generator", "concurrency", "versus", "ratio"],
            [[r["target"], r["generator"], str(r["concurrency"]), r["versus"], f"{r['ratio']:.3f}"]
             for r in results["ratios"]],
        )
    if results.get("handshake"):
        out.append("### One full TLS handshake per request (h2load, `Connection: close`, concurrency 16)\n")
        table(
            ["target", "requests/s", "p50 ms", "p99 ms", "server CPU ms per handshake"],
            [[h["target"], f"{h['rps']:,.0f}", f"{h['p50_ms']:.2f}", f"{h['p99_ms']:.2f}",
              "-" if h.get("handshake_ms") is None else f"{h['handshake_ms']:.2f}"] for h in results["handshake"]],
        )
    if results.get("send"):
        out.append("### `tcwebhook send` as the load generator (simulator order events)\n")
        table(
            ["concurrency", "events", "requests/s", "p50 ms", "p99 ms", "statuses"],
            [[str(s["concurrency"]), str(s.get("sent")), f"{s.get('requests_per_s', 0):,.0f}",
              f"{s.get('p50_ms', 0):.1f}", f"{s.get('p99_ms', 0):.1f}", _codes(s.get("status", {}))]
             for s in results["send"]],
        )
    sinks = results.get("sinks", {})
    if sinks:
        out.append("### Sink delivery throughput\n")
        rows = [[f"dispatcher → {k} sink ({v['events']:,} events)", f"{v['events_per_s']:,.0f}"]
                for k, v in sinks.get("dispatcher", {}).items()]
        rows += [[f"sink alone: {k}", f"{v:,.0f}"] for k, v in sinks.get("in_process", {}).items()]
        table(["path", "events/s"], rows)
    if results.get("growth"):
        out.append("### Inbox growth (unique events, concurrency 64)\n")
        table(
            ["events stored before the run", "requests/s", "p99 ms", "delivery backlog after the run",
             "then delivered events/s", "inbox bytes per 1,000 events", "pre-fill time s"],
            [[f"{g['stored_before']:,}", f"{g['rps']:,.0f}" + (
                f" ({' / '.join(f'{x:,.0f}' for x in g['rps_all'])})" if len(g["rps_all"]) > 1 else ""),
              f"{g['p99_ms']:.2f}", f"{g.get('backlog_after_run', 0):,}",
              "-" if g.get("drain_eps") is None else f"{g['drain_eps']:,.0f}" + (
                  f" ({g['backlog_left']:,} left)" if g.get("backlog_left") else ""),
              f"{g['bytes_per_1000']:,}", f"{g['prefill_seconds']:.0f}"]
             for g in results["growth"]],
        )
    sus = results.get("sustained")
    if sus:
        out.append(f"### Sustained ingest, files sink ({sus['seconds']:.0f} s"
                   + (", shortened by `--quick`" if sus.get("shortened") else "") + ")\n")
        table(
            ["maximum req/s", "offered req/s", "achieved req/s", "p99 ms", "stored", "delivered",
             "backlog at end", "backlog max", "load average at end"],
            [[f"{sus['max_rps']:,.0f}", f"{sus['rate']:,.0f}", f"{sus['achieved_rps']:,.0f}", f"{sus['p99_ms']:.2f}",
              f"{sus['stored']:,}", f"{sus['delivered']:,}", f"{sus['backlog_end']:,}", f"{sus['backlog_max']:,}",
              " ".join(str(x) for x in sus.get("loadavg_end", []))]],
        )
    rss = results.get("peak_rss_mb", {})
    if rss:
        out.append("### Peak RSS (VmHWM), MiB\n")
        table(["process", "peak RSS"], [[k, f"{max(v for v in vals if v is not None):.1f}"]
                                       for k, vals in rss.items() if any(v is not None for v in vals)])
    out.append("### Targets\n")
    table(
        ["target", "goal", "measured", "result"],
        [[c["what"], c["target"], str(c["measured"]),
          {True: "met", False: "**missed**", None: "not measured"}[c["met"]]] for c in results.get("targets", [])],
    )
    out.extend(f"- note: {note}" for note in results.get("notes", []))
    from bench.postgres import markdown as postgres_markdown

    out.extend(postgres_markdown(results))
    return "\n".join(out)
