"""What contract-drift recording costs on the stored path (run: python bench/drift.py).

Two parts, in µs per event: finding what the models did not know (``find_drift``, run by
``parse_webhook`` on every body) for bodies of 1, 100 and 500 lines, with and without unknown
fields or numbers sent as text (marked while validating: that part is in the parse column); and
storing events in a real SQLite inbox (group commit, fsync) with no finding and with two findings
(two upserts of ``contract_drift`` in the store's transaction).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path
from typing import Any

import orjson

from tcwebhook.config import Settings
from tcwebhook.contract.drift import Finding, find_drift
from tcwebhook.contract.kinds import EventKind
from tcwebhook.contract.names import ORDER_BODY_KEYS, SHIPMENT_BODY_KEYS
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.inbox import NewEvent, open_inbox

KEYS = ORDER_BODY_KEYS + SHIPMENT_BODY_KEYS


def order(lines: int, unknown: bool, text: bool = False) -> bytes:
    def line(n: int) -> dict[str, Any]:
        quantity, value = ("5", "1.5") if text else (5, 1.5)
        item: dict[str, Any] = {
            "id": f"l{n}",
            "lineType": "Item",
            "buyerLine": {"position": f"{n:04d}", "item": {"number": f"I-{n}", "name": "Bolt"},
                          "deliverySchedule": [{"position": 1, "date": "2025-06-10", "quantity": quantity}],
                          "prices": {"netPrice": {"priceInTransactionCurrency": {"value": value,
                                                                                   "currencyIso": "EUR"}}}},
            "status": {"processStatus": "Issued", "logisticsStatus": "Open"},
        }
        if unknown:
            item["carbonFootprint"] = {"kg": n}
        return item

    body = {"eventName": "OrderLinesUpdatedByBuyer",
            "orderEvent": {"orderId": "o-1", "buyerOrder": {"purchaseOrderNumber": "PO-1"},
                           "lines": [line(n) for n in range(lines)]},
            "meta": {"messageId": "m-1"}}
    return orjson.dumps(body)


def best_us(fn: Any, repeat: int = 5) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def walk() -> None:
    print("find_drift (the walk parse_webhook adds), best of 5; µs per body. 'stored' is what the store")
    print("pays (the walk runs only when validation met an unknown), 'walked' the walk forced to run:")
    print(f"{'body':<28} {'parse':>8} {'stored':>8} {'walked':>8} {'share':>6} findings")
    for lines in (1, 100, 500):
        for unknown, text in ((False, False), (True, False), (False, True)):
            raw = order(lines, unknown, text)
            parsed = parse_webhook("orders", raw, "application/json")
            assert parsed.findings is not None
            met = parsed.findings.walks
            parse = best_us(lambda raw=raw: parse_webhook("orders", raw, "application/json"))
            paid = best_us(lambda p=parsed, met=met: find_drift(p.envelope, p.event_name, KEYS, walk=met))
            forced = best_us(lambda p=parsed: find_drift(p.envelope, p.event_name, KEYS, walk=True))
            label = f"{lines} lines{', unknown field' if unknown else ''}{', numbers as text' if text else ''}"
            print(f"{label:<28} {parse:>8.1f} {paid:>8.1f} {forced:>8.1f} {paid / parse:>6.1%} {len(parsed.drift)}")


async def store_rate(drift: tuple[Finding, ...], count: int, folder: Path) -> float:
    settings = Settings(data_dir=folder)
    inbox = open_inbox(settings)
    await inbox.open()
    try:
        events = [
            NewEvent(kind=EventKind.ORDER, event_name="OrderLinesUpdatedByBuyer", dedupe_key=str(uuid.uuid4()),
                     content_type="application/json", body=b'{"eventName":"x"}', key=f"order:o-{n % 50}",
                     order_id=f"o-{n % 50}", drift=drift)
            for n in range(count)
        ]
        started = time.perf_counter()
        for start in range(0, count, 64):  # 64 requests at once, as a busy receiver has them
            await asyncio.gather(*(inbox.store(e) for e in events[start : start + 64]))
        return (time.perf_counter() - started) / count * 1e6
    finally:
        await inbox.close()


def stored(count: int = 4000, rounds: int = 3) -> None:
    findings = (Finding("field", "orderEvent.carbonFootprint"), Finding("enum_value", "orderEvent.lines[].lineType=X"))
    print(f"\nSQLite store, {count} events, 64 at a time, median of {rounds} rounds (µs per event):")
    results: dict[str, list[float]] = {"no finding": [], "two findings": []}
    for _ in range(rounds):
        for label, drift in (("no finding", ()), ("two findings", findings)):
            with tempfile.TemporaryDirectory() as tmp:
                results[label].append(asyncio.run(store_rate(drift, count, Path(tmp))))
    base = statistics.median(results["no finding"])
    for label, values in results.items():
        median = statistics.median(values)
        print(f"{label:<14} {median:>8.1f}  (+{median - base:.1f})  rounds: {', '.join(f'{v:.1f}' for v in values)}")


if __name__ == "__main__":
    walk()
    if "--walk-only" not in sys.argv:
        stored()
