"""Ids of any printable character from a real `serve` over TLS to the fake Tradecloud API and
into the files sink: fetched and enriched under their percent-encoded path, stored and written
unchanged, file names escaped reversibly."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote, unquote

import orjson
from tests.ids import ID_SAMPLES, SDK_ORDER_ID
from tests.support.servers import ServerFactory

from .fake_api import PASSWORD, USERNAME, FakeServer, FakeTradecloud


def extra(fake_server: FakeServer, outbox: Path) -> str:
    return (
        f'[tradecloud]\napi_base = "{fake_server.api_base}"\nusername = "{USERNAME}"\npassword = "{PASSWORD}"\n'
        f'ca_bundle = "{fake_server.ca_path}"\ntimeout = 5\nmax_retries = 2\n'
        f'[delivery]\npoll_interval = 0.05\n'
        f'[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "{outbox}"\nenrich = true\n'
    )


def wait_files(outbox: Path, count: int, timeout: float = 30.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(outbox.glob("*.json")) if outbox.exists() else []
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


class TestIdsThroughTheApi:
    """GET triggers and enrichment fetch the object the id names, whatever it holds."""

    def test_triggers_and_enrichment(
        self, server_factory: ServerFactory, fake_server: FakeServer, fake_api: FakeTradecloud, tmp_path: Path
    ) -> None:
        outbox = tmp_path / "outbox"
        for n, order_id in enumerate(ID_SAMPLES):
            fake_api.add_order({"id": order_id, "buyerOrder": {"purchaseOrderNumber": order_id.split("-", 5)[-1]},
                                "lines": [{"id": f"l{n}"}]})
        server = server_factory.start("ids", extra=extra(fake_server, outbox))
        with server.client() as c:
            for order_id in ID_SAMPLES:  # a trigger as a query parameter: the form for any id
                r = c.get(server.url_orders, params={"orderId": order_id}, headers=server.bearer())
                assert r.status_code == 202, r.text
            body = {"eventName": "OrderLinesUpdatedByBuyer", "orderEvent": {"orderId": SDK_ORDER_ID, "lines": []},
                    "meta": {"messageId": "m-sdk-1"}}
            assert c.post(server.url_orders, json=body, headers=server.bearer()).status_code == 202
        files = wait_files(outbox, len(ID_SAMPLES) + 2)  # the triggers, the event and its full order
        names = [p.name for p in files]
        assert len(files) == len(ID_SAMPLES) + 2, names
        fetched = {orjson.loads(p.read_bytes())["id"] for p in files if "_OrderFetchRequested_" in p.name}
        assert fetched == set(ID_SAMPLES)
        [full] = [p for p in files if p.name.endswith(".full-order.json")]
        assert orjson.loads(full.read_bytes())["id"] == SDK_ORDER_ID
        for p in files:
            parts = p.name.split("_")
            assert len(parts) == 5, p.name  # an id never adds a separator
        numbers = {unquote(p.name.split("_")[3]) for p in files if "_OrderFetchRequested_" in p.name}
        assert numbers == {i.split("-", 5)[-1] for i in ID_SAMPLES}
        sent = {c.raw_path for c in fake_api.calls_to("/v2/order/", "GET")}
        assert {f"/v2/order/{quote(i, safe='')}" for i in ID_SAMPLES if i != ".."} <= sent
        assert "/v2/order/%2E%2E" in sent
