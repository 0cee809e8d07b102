"""Reconciliation end to end: the fake Tradecloud sends webhooks to the real `tcwebhook serve`,
some land on a misconfigured receiver (400/500, never retried), and `tcwebhook reconcile` finds
them, resends or fetches them, and they are delivered in order; a second run finds nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.polling import eventually
from tests.support.servers import CLI, RunningServer, ServerFactory
from tests.tradecloud_api.fake_api import PASSWORD, USERNAME, FakeServer, FakeTradecloud, WebhookTarget

from tcwebhook.config import load_settings
from tcwebhook.inbox import EventFilter, StoredEvent, open_inbox


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServer]:
    server = FakeServer(tmp_path_factory.mktemp("fake-tradecloud"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_server: FakeServer) -> FakeTradecloud:
    fake_server.fake.reset()
    return fake_server.fake


def extra(fake_server: FakeServer, outbox: Path, reconcile: str = "") -> str:
    return (
        f'[tradecloud]\napi_base = "{fake_server.api_base}"\nusername = "{USERNAME}"\npassword = "{PASSWORD}"\n'
        f'ca_bundle = "{fake_server.ca_path}"\ntimeout = 5\nmax_retries = 2\n'
        f"[reconcile]\ngrace = 0\n{reconcile}\n"
        f'[delivery]\npoll_interval = 0.05\n[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "{outbox}"\n'
    )


def targets(server: RunningServer, fake_server: FakeServer) -> dict[str, WebhookTarget]:
    def broken(status: int) -> WebhookTarget:
        base = f"{fake_server.origin}/misconfigured/{status}"
        return WebhookTarget(f"{base}/orders", f"{base}/shipments", {}, str(fake_server.ca_path))

    good = WebhookTarget(server.url_orders, server.url_shipments, server.bearer(), str(server.ca_path))
    return {"good": good, "400": broken(400), "500": broken(500)}


def order(n: int) -> dict[str, Any]:
    return {
        "id": f"ord-{n}",
        "buyerOrder": {"purchaseOrderNumber": f"PO-{n}"},
        "lines": [{"id": "l1", "buyerLine": {"position": "0001"}}],
    }


def shipment(n: int) -> dict[str, Any]:
    return {"id": f"shp-{n}", "supplierShipment": {"shipmentNumber": f"SN-{n}"}, "lines": []}


def cli(server: RunningServer, *args: str) -> tuple[int, Any]:
    assert server.config_path is not None
    done = subprocess.run(
        [*CLI, *args, "--config", str(server.config_path), "--json"],
        capture_output=True,
        timeout=60,
        cwd=server.config_path.parent,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr.decode()
    return done.returncode, json.loads(done.stdout)


def wait(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    eventually(predicate, timeout)


def outbox_files(outbox: Path, marker: str) -> list[Path]:
    return sorted(p for p in outbox.glob("*.json") if marker in p.name) if outbox.exists() else []


class TestReconcileCommand:
    """`tcwebhook reconcile` finds dropped webhooks; --resend and --fetch repair them."""

    def test_resend_repairs_dropped_webhooks_in_order(
        self, server_factory: ServerFactory, fake_server: FakeServer, fake: FakeTradecloud, tmp_path: Path
    ) -> None:
        outbox = tmp_path / "outbox"
        server = server_factory.start("resend", extra=extra(fake_server, outbox))
        to = targets(server, fake_server)

        fake.webhook_target = to["good"]
        assert fake.send_webhook("orders", fake.order_webhook(fake.update_order(order(1)))) == 202
        assert fake.send_webhook("orders", fake.order_webhook(fake.update_order(order(2)))) == 202
        assert fake.send_webhook("shipments", fake.shipment_webhook(fake.update_shipment(shipment(1)))) == 202
        fake.webhook_target = to["500"]  # the receiver is misconfigured for a while
        assert fake.send_webhook("orders", fake.order_webhook(fake.update_order(order(2)))) == 500
        assert fake.send_webhook("orders", fake.order_webhook(fake.update_order(order(3)))) == 500
        fake.webhook_target = to["400"]
        assert fake.send_webhook("shipments", fake.shipment_webhook(fake.update_shipment(shipment(2)))) == 400
        fake.webhook_target = to["good"]  # fixed; Tradecloud does not retry what it sent

        code, report = cli(server, "reconcile", "--since", "1h")
        assert code == 1 and report["complete"]
        assert {(g["id"], g["reason"]) for g in report["gaps"]} == {
            ("ord-2", "stale"),
            ("ord-3", "missing"),
            ("shp-2", "missing"),
        }

        code, report = cli(server, "reconcile", "--since", "1h", "--resend")
        assert code == 0 and {g["outcome"] for g in report["gaps"]} == {"resent"}
        wait(lambda: sum(1 for name, status in fake.webhooks_sent if "Resent" in name and status == 202) == 3)
        # Delivered: ord-2's resent state lands after its first state.
        wait(lambda: len(outbox_files(outbox, "_PO-2_")) == 2 and len(outbox_files(outbox, "SN-2")) == 1)
        versions = [json.loads(p.read_bytes())["orderEvent"]["version"] for p in outbox_files(outbox, "_PO-2_")]
        assert versions == [1, 2]

        code, report = cli(server, "reconcile", "--since", "1h")
        assert code == 0 and report["gaps"] == []

    def test_fetch_stores_reconciled_events(
        self, server_factory: ServerFactory, fake_server: FakeServer, fake: FakeTradecloud, tmp_path: Path
    ) -> None:
        outbox = tmp_path / "outbox"
        server = server_factory.start("fetch", extra=extra(fake_server, outbox))
        to = targets(server, fake_server)
        fake.webhook_target = to["good"]
        assert fake.send_webhook("orders", fake.order_webhook(fake.update_order(order(4)))) == 202
        fake.webhook_target = to["500"]
        lost = fake.update_order(order(4))
        assert fake.send_webhook("orders", fake.order_webhook(lost)) == 500

        code, report = cli(server, "reconcile", "--orders", "--since", "1h", "--fetch")
        assert code == 0 and [(g["id"], g["outcome"]) for g in report["gaps"]] == [("ord-4", "fetched")]
        assert fake.calls_to("/v2/shipment/poll") == []

        code, listed = cli(server, "events", "list", "--status", "reconciled")
        assert code == 0 and [(e["kind"], e["order_id"]) for e in listed] == [("order_fetch", "ord-4")]
        wait(lambda: len(outbox_files(outbox, "_PO-4_")) == 2)
        first, second = outbox_files(outbox, "_PO-4_")
        assert json.loads(first.read_bytes())["orderEvent"]["version"] == 1
        assert json.loads(second.read_bytes()) == lost  # the object itself, delivered after

        code, report = cli(server, "reconcile", "--orders", "--since", "1h", "--fetch")
        assert code == 0 and report["gaps"] == []


class TestBackground:
    """`[reconcile] interval` inside serve: gaps fetched, counted in the metrics, mark kept."""

    def test_background_run_in_serve(
        self, server_factory: ServerFactory, fake_server: FakeServer, fake: FakeTradecloud, tmp_path: Path
    ) -> None:
        fake.update_shipment(shipment(5))  # a change no webhook ever brought
        outbox = tmp_path / "outbox"
        server = server_factory.start("background", extra=extra(fake_server, outbox, 'interval = "1s"'))

        def reconciled() -> list[StoredEvent]:
            async def read() -> list[StoredEvent]:
                assert server.config_path is not None
                inbox = open_inbox(load_settings(server.config_path))
                await inbox.open()
                try:
                    return list(await inbox.list_events(EventFilter(reconciled=True)))
                finally:
                    await inbox.close()

            return asyncio.run(read())

        wait(lambda: len(reconciled()) == 1)
        assert reconciled()[0].shipment_id == "shp-5"
        wait(lambda: len(outbox_files(outbox, "SN-5")) == 1)
        with server.client() as client:
            metrics = client.get(server.base_url + "/metrics", headers=server.bearer()).text
        assert 'tcwebhook_reconcile_gaps_total{kind="shipment",outcome="fetched",reason="missing"} 1.0' in metrics
        assert 'tcwebhook_reconcile_runs_total{result="complete"}' in metrics
        polls = len(fake.calls_to("/v2/shipment/poll"))
        time.sleep(1.5)
        assert len(fake.calls_to("/v2/shipment/poll")) > polls  # keeps running, from the mark
        assert [e.shipment_id for e in reconciled()] == ["shp-5"]
