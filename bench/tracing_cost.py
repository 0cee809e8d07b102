"""CPU per stored webhook through the Receiver in-process, tracing off and on (spans kept in memory).

Run: python bench/tracing_cost.py [N]. Off and on alternate, three rounds each, on fresh SQLite
inboxes; the figure is process CPU per request (receiver, parse, store thread), so compare the two
columns of one run only.
"""

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tcwebhook.config import Settings
from tcwebhook.inbox.sqlite import SqliteInbox
from tcwebhook.receiver.app import Receiver
from tcwebhook.telemetry import Tracing


def body(i: int) -> bytes:
    return orjson.dumps({
        "eventName": "OrderIssuedByBuyer",
        "orderEvent": {
            "orderId": f"o-{i}",
            "buyerOrder": {"purchaseOrderNumber": f"PO-{i}"},
            "lastUpdatedAt": "2025-05-02T08:15:29.987Z",
            "lines": [{"id": "l1", "buyerLine": {"position": "0001"}}],
        },
        "meta": {"messageId": str(uuid.uuid4())},
    })


async def run(tracing: Tracing, n: int) -> float:
    d = Path(tempfile.mkdtemp())
    s = Settings(data_dir=d, auth={"bearer_tokens": ["t" * 24]})
    inbox = SqliteInbox(d / "inbox.db", s.store)
    await inbox.open()
    app = Receiver(s, inbox, tracing=tracing)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://x") as c:
        h = {"Authorization": "Bearer " + "t" * 24, "Content-Type": "application/json"}
        for i in range(50):
            await c.post("/tradecloud/orders", content=body(i), headers=h)
        cpu = time.process_time()
        for i in range(n):
            r = await c.post("/tradecloud/orders", content=body(1000 + i), headers=h)
            assert r.status_code == 202
        cpu = time.process_time() - cpu
    await inbox.close()
    return cpu / n * 1e6

def on() -> Tracing:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    return Tracing(provider)

async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    res: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(3):
        res["off"].append(await run(Tracing.off(), n))
        res["on"].append(await run(on(), n))
    for k, v in res.items():
        print(k, " ".join(f"{x:.0f}" for x in v), f"µs CPU per stored request (median {sorted(v)[1]:.0f})")
if __name__ == "__main__":
    asyncio.run(main())
