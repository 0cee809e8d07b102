"""Console page render times on an inbox with a million events (``python bench/console.py``).

The inbox file is made with the real schema (``inbox.sqlite.migrate``) and filled in bulk
with SQL, which is much faster than a million stores through the writer and lets the mix be
chosen: 30 days of arrivals, 60 % order events, 35 % shipments (delivered to two sinks), 5 % GET
triggers; 97 % delivered, 1 % dead, 1 % pending (behind an ERP outage), 1 % superseded, with
their attempts. The console then runs in-process (ASGI, no TLS or network: the time is the
page's, store queries and rendering included) on ``SqliteInbox`` over that file; each page is
fetched ``--repeat`` times after one warm-up and the median and the slowest are reported.

    python bench/console.py --events 1000000 --db /tmp/console-bench.db [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sqlite3
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

from tcwebhook.config import Settings
from tcwebhook.console.app import ConsoleHooks, build_app
from tcwebhook.inbox.sqlite import SqliteInbox, migrate

DAY = 86_400.0
USER = ("bench", "bench-password-1")


def _body(kind: str, n: int, po: str, order_id: str, shipment: str) -> bytes:
    if kind == "shipment":
        return orjson.dumps({"eventName": "ShipmentUpdated", "shipment": {"id": shipment, "number": f"SN-{n:07d}",
                             "lines": [{"orderId": order_id, "purchaseOrderNumber": po, "quantity": 10}]}})
    if kind == "order_fetch":
        return orjson.dumps({"orderId": order_id})
    return orjson.dumps({"eventName": "OrderLinesUpdatedByBuyer", "orderEvent": {"orderId": order_id,
                         "buyerOrder": {"purchaseOrderNumber": po, "description": "bench order " * 4},
                         "lines": [{"position": str(i), "quantity": 5 * i} for i in range(1, 4)]},
                         "meta": {"messageId": str(uuid.UUID(int=n))}})


def fill(path: Path, events: int, seed: int = 7) -> dict[str, object]:
    """Write ``events`` events with deliveries and attempts; returns probes for the pages."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn, str(path))
    conn.execute("PRAGMA synchronous = OFF")
    now = time.time()
    start = now - 30 * DAY
    step = 30 * DAY / events
    conn.execute("BEGIN")
    ev_rows, dl_rows, at_rows = [], [], []
    probes: dict[str, object] = {}
    for n in range(1, events + 1):
        received = start + n * step
        r = rng.random()
        kind = "order" if r < 0.60 else "shipment" if r < 0.95 else "order_fetch"
        order_id = f"order-{n // 3:07d}"
        po = f"PO-{n // 3:07d}"
        shipment = f"ship-{n // 2:07d}"
        s = rng.random()
        status = "delivered" if s < 0.97 else "dead" if s < 0.98 else "pending" if s < 0.99 else "superseded"
        if n > events - 2000 and rng.random() < 0.5:
            status = "pending"  # the recent outage: a backlog at the end
        event_id = str(uuid.UUID(int=(n << 64) | rng.getrandbits(64), version=4))
        message_id = str(uuid.UUID(int=n)) if kind == "order" else None
        key = f"shipment:{shipment}" if kind == "shipment" else f"order:{order_id}"
        name = {"order": "OrderLinesUpdatedByBuyer", "shipment": "ShipmentUpdated", "order_fetch": "OrderFetch"}[kind]
        ev_rows.append((
            n, event_id, message_id or f"sha256:{n:064x}", received, kind, name, status, key,
            order_id if kind != "shipment" else None, shipment if kind == "shipment" else None,
            po if kind == "order" else None, f"SN-{n:07d}" if kind == "shipment" else None, message_id,
            None, None, "application/json", b'{"content-type":"application/json","authorization":"[redacted]"}',
            _body(kind, n, po, order_id, shipment),
        ))
        sinks = ("erp", "wms") if kind == "shipment" else ("erp",)
        for sink in sinks:
            d_status = status if sink == "erp" else "delivered"
            attempts = 1 if d_status in ("delivered", "superseded") else 3 if d_status == "pending" else 5
            err = None if d_status == "delivered" else "TransientError: HTTP 503 from the ERP"
            if d_status == "dead":
                err = "PermanentError: HTTP 422: unknown article"
            dl_rows.append((n, sink, key, d_status, attempts, now + 60 if d_status == "pending" else None,
                            err, received + 1))
            for a in range(1, attempts + 1):
                last = a == attempts
                outcome = ("delivered" if d_status == "delivered" else "superseded" if d_status == "superseded"
                           else "permanent" if d_status == "dead" and last else "transient")
                at_rows.append((n, sink, a, received + a, 0.02, outcome, None if outcome == "delivered" else err))
        if status == "dead" and "dead_po" not in probes and kind == "order":
            probes["dead_po"] = po
        if n == events // 2:
            probes["mid_seq"] = n
            probes["mid_event"] = event_id
        if len(ev_rows) >= 20_000:
            _flush(conn, ev_rows, dl_rows, at_rows)
    _flush(conn, ev_rows, dl_rows, at_rows)
    for i in range(200):
        conn.execute(
            "INSERT INTO quarantine (id, received_at, route, content_type, reason, status_code, headers, body)"
            " VALUES (?, ?, 'orders', 'application/json', 'no eventName', 400, '{}', ?)",
            (str(uuid.uuid4()), now - i * 3600, b'{"nope": true}'),
        )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    probes["last_event"] = ev_rows[-1][1] if ev_rows else None
    return probes


def _flush(conn: sqlite3.Connection, ev: list[tuple[object, ...]], dl: list[tuple[object, ...]],
           at: list[tuple[object, ...]]) -> None:
    conn.executemany(
        "INSERT INTO events (seq, event_id, dedupe_key, received_at, kind, event_name, status, key, order_id,"
        " shipment_id, purchase_order_number, shipment_number, message_id, last_updated_at, updated_us,"
        " content_type, headers, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ev,
    )
    conn.executemany(
        "INSERT INTO deliveries (seq, sink, key, status, attempts, next_attempt_at, last_error, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        dl,
    )
    conn.executemany(
        "INSERT INTO attempts (seq, sink, number, started_at, duration, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
        at,
    )
    ev.clear()
    dl.clear()
    at.clear()


async def measure(path: Path, probes: dict[str, object], repeat: int) -> list[tuple[str, float, float, int]]:
    settings = Settings(
        data_dir=path.parent,
        sinks=[{"name": "erp", "type": "files", "directory": "/nonexistent"},
               {"name": "wms", "type": "files", "directory": "/nonexistent"}],
        console={"enabled": True, "users": [{"username": USER[0], "password": USER[1], "role": "operator"}]},
    )
    inbox = SqliteInbox(path, settings.store, sinks=["erp", "wms"])
    await inbox.open()
    expiry = datetime.now(UTC) + timedelta(days=60)
    app = build_app(settings, inbox, ConsoleHooks(certificate_expiry=lambda: expiry))
    results = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://console.bench") as c:
        form = await c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token
        r = await c.post("/login", data={"username": USER[0], "password": USER[1], "csrf_token": token.group(1)})
        assert r.status_code == 303, r.text
        since = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M")
        until = (datetime.now(UTC) - timedelta(days=9)).strftime("%Y-%m-%dT%H:%M")
        pages = [
            ("overview", "/"),
            ("events, newest", "/events"),
            ("events, page at the middle (keyset)", f"/events?before={probes['mid_seq']}"),
            ("events, status=dead", "/events?status=dead"),
            ("events, status=superseded", "/events?status=superseded"),
            ("events, kind=order_fetch", "/events?kind=order_fetch"),
            ("events, kind=shipment_fetch (matches none)", "/events?kind=shipment_fetch"),
            ("events, event=NoSuch* (glob matching none)", "/events?event=NoSuch*"),
            ("events, event=OrderFetch (exact name)", "/events?event=OrderFetch"),
            ("events, event=Shipment*", "/events?event=Shipment*"),
            ("events, sink=erp status=pending", "/events?sink=erp&status=pending"),
            ("events, sink=wms status=delivered", "/events?sink=wms&status=delivered"),
            ("events, one day 10 days ago", f"/events?since={since}&until={until}"),
            ("events, q=<PO number>", f"/events?q={probes['dead_po']}"),
            ("events, q=<message id>", f"/events?q={uuid.UUID(int=int(str(probes['mid_seq'])) - 1)}"),
            ("events, q=<no match>", "/events?q=PO-NOPE"),
            ("event page", f"/events/{probes['mid_event']}"),
            ("dead letters of erp", "/dead?sink=erp"),
            ("quarantine", "/quarantine"),
        ]
        for label, url in pages:
            r = await c.get(url)
            assert r.status_code == 200, (url, r.status_code, r.text[:300])
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                r = await c.get(url)
                times.append((time.perf_counter() - t0) * 1000)
            rows = r.text.count("<tr") - r.text.count("<thead")
            results.append((label, statistics.median(times), max(times), rows))
    await inbox.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/tcwebhook-console-bench.db"))
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--reuse", action="store_true", help="measure an existing file made by an earlier run")
    args = parser.parse_args()
    probes_path = args.db.with_suffix(".probes.json")
    if args.reuse and args.db.exists():
        probes = orjson.loads(probes_path.read_bytes())
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        t0 = time.perf_counter()
        probes = fill(args.db, args.events)
        probes_path.write_bytes(orjson.dumps(probes))
        size = args.db.stat().st_size / 1e6
        print(f"filled {args.events:,} events in {time.perf_counter() - t0:.0f} s, {size:,.0f} MB", file=sys.stderr)
    results = asyncio.run(measure(args.db, probes, args.repeat))
    print(f"{'page':<48} {'median ms':>10} {'max ms':>8} {'rows':>5}")
    for label, median, worst, rows in results:
        print(f"{label:<48} {median:>10.1f} {worst:>8.1f} {rows:>5}")


if __name__ == "__main__":
    main()
