"""An event object Tradecloud added after this version, through a real `serve` over TLS: stored
as kind unknown and answered 202 (never 400), delivered to the sink with accept_unknown, held as
unrecognised for the other, shown by `events list --status unrecognised`, and replayed; a body
that is no envelope at all stays a 400. Numbers sent as text reach the drift report."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.support.bodies import order_body
from tests.support.polling import eventually
from tests.support.servers import CLI, RunningServer, ServerFactory

from tcwebhook.config import load_settings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox import NewEvent, open_inbox


def cli(server: RunningServer, *args: str) -> Any:
    assert server.config_path is not None
    done = subprocess.run([*CLI, *args, "--config", str(server.config_path), "--json"],
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*")) if directory.exists() else []


def unknown_body() -> dict[str, Any]:
    body = order_body("OrderTeleportedByBuyer", key="orderTeleportEvent")
    body["orderTeleportEvent"]["destination"] = {"planet": "Mars"}
    return body


@pytest.fixture
def site(server_factory: ServerFactory, tmp_path: Path) -> tuple[RunningServer, Path, Path]:
    raw, erp = tmp_path / "raw", tmp_path / "erp"
    extra = (
        "[delivery]\npoll_interval = 0.2\n"
        f'[[sinks]]\nname = "raw"\ntype = "files"\ndirectory = "{raw}"\naccept_unknown = true\n'
        f'[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "{erp}"\nevents = ["order"]\n'
    )
    return server_factory.start("unknown", extra), raw, erp


class TestUnknownEventObject:
    @pytest.mark.slow  # about 35 s: a server, a replay and a dozen CLI runs
    def test_stored_held_and_delivered_where_accepted(self, site: tuple[RunningServer, Path, Path]) -> None:
        server, raw, erp = site
        body = unknown_body()
        with server.client() as c:
            r = c.post(server.url_orders, json=body, headers=server.bearer())
            assert r.status_code == 202, r.text
            assert r.json()["status"] == "stored"
            event_id = r.json()["eventId"]
            again = c.post(server.url_orders, json=body, headers=server.bearer())
            assert (again.status_code, again.json()["eventId"]) == (200, event_id)  # a resend: a duplicate
            xml = (b"<webhook><eventName>ShipmentTeleported</eventName><meta><messageId>" + uuid.uuid4().hex.encode()
                   + b"</messageId></meta><shipmentTeleport><id>s-1</id></shipmentTeleport></webhook>")
            xml_headers = {**server.bearer(), "Content-Type": "application/xml"}
            rx = c.post(server.url_shipments, content=xml, headers=xml_headers)
            assert rx.status_code == 202, rx.text
            metrics = c.get(server.base_url + "/metrics", headers=server.bearer()).text

        eventually(lambda: len(files(raw)) == 2, 20, what="both unknown events in the raw sink")
        delivered = {p.read_bytes() for p in files(raw)}
        assert json.loads(next(b for b in delivered if b.startswith(b"{"))) == body  # the body as received
        listed = eventually(lambda: cli(server, "events", "list", "--status", "unrecognised") or None, 20)
        assert {e["event_id"] for e in listed} == {event_id, rx.json()["eventId"]}
        assert {e["kind"] for e in listed} == {"unknown"}
        assert files(erp) == []  # erp has no accept_unknown: nothing reached it
        shown = cli(server, "events", "show", event_id)
        assert {d["sink"]: d["status"] for d in shown["deliveries"]} == {"raw": "delivered", "erp": "unrecognised"}
        assert shown["event_name"] == "OrderTeleportedByBuyer"
        report = {(r["what"], r["detail"]) for r in cli(server, "contract", "drift")}
        assert {("event_key", "orderTeleportEvent"), ("event_key", "shipmentTeleport")} <= report
        assert 'tcwebhook_contract_unknown_total{what="event_key"} 2.0' in metrics
        assert 'tcwebhook_events_total{kind="unknown",outcome="stored"} 2.0' in metrics
        assert 'tcwebhook_events_total{kind="unknown",outcome="duplicate"} 1.0' in metrics

        # Replayed while still unknown: held again for erp, delivered again to raw; never lost.
        summary = cli(server, "events", "replay", event_id)
        assert (summary["requeued"], summary["reclassified"]) == (2, 0)

        def settled() -> bool:
            ds = {d["sink"]: d["status"] for d in cli(server, "events", "show", event_id)["deliveries"]}
            return ds == {"raw": "delivered", "erp": "unrecognised"}

        eventually(settled, 20, what="the replayed unknown event settled again")
        assert cli(server, "events", "show", event_id)["status"] == "unrecognised"
        assert files(erp) == []

    def test_known_on_replay_is_delivered_as_what_it_is(self, site: tuple[RunningServer, Path, Path]) -> None:
        """An event an older version stored as unknown (its body an order event this version knows):
        `events replay --unrecognised` reads it again, and erp gets it as the order it is."""
        server, _, erp = site
        assert server.config_path is not None
        settings = load_settings(server.config_path)
        body = order_body()
        order_id = body["orderEvent"]["orderId"]

        async def store_as_an_older_version() -> str:
            inbox = open_inbox(settings)
            await inbox.open()
            try:
                stored = await inbox.store(NewEvent(
                    kind=EventKind.UNKNOWN, event_name="OrderIssuedByBuyer", dedupe_key=body["meta"]["messageId"],
                    content_type="application/json", body=json.dumps(body).encode(), book=None,
                ))
                return stored.event_id
            finally:
                await inbox.close()

        event_id = asyncio.run(store_as_an_older_version())
        eventually(lambda: cli(server, "events", "show", event_id)["status"] == "unrecognised", 20)
        assert files(erp) == []
        summary = cli(server, "events", "replay", "--unrecognised")
        assert (summary["events"], summary["requeued"], summary["reclassified"]) == (1, 1, 1)  # erp's only
        eventually(lambda: len(files(erp)) == 1, 20, what="the order in the erp sink")
        assert json.loads(files(erp)[0].read_bytes()) == body
        shown = cli(server, "events", "show", event_id)
        assert (shown["kind"], shown["order_id"], shown["key"]) == ("order", order_id, f"order:{order_id}")
        assert shown["status"] == "delivered"
        assert cli(server, "events", "list", "--status", "unrecognised") == []
        assert cli(server, "orders", "show", order_id)["key"] == f"order:{order_id}"  # it joined the order book

    def test_no_envelope_stays_a_400(self, site: tuple[RunningServer, Path, Path]) -> None:
        server, _, _ = site
        no_meta = unknown_body()
        del no_meta["meta"]
        bad_meta = {**unknown_body(), "meta": "m-1"}
        no_name = unknown_body()
        del no_name["eventName"]
        no_object = {"eventName": "OrderTeleportedByBuyer", "meta": {"messageId": "m"}, "note": "text"}
        with server.client() as c:
            for body in (no_meta, bad_meta, no_name, no_object, [unknown_body()]):
                r = c.post(server.url_orders, json=body, headers=server.bearer())
                assert r.status_code == 400, (body, r.text)
            r = c.post(server.url_orders, json=no_meta, headers=server.bearer())
            assert "beside a meta object" in r.json()["detail"]
        assert cli(server, "events", "list") == []

    def test_number_sent_as_text_in_the_drift_report(self, site: tuple[RunningServer, Path, Path]) -> None:
        server, _, erp = site
        ids = []
        with server.client() as c:
            for quantity in ("10", "2.5", 3):
                body = order_body()
                body["orderEvent"]["lines"][0]["buyerLine"]["deliverySchedule"] = [{"quantity": quantity}]
                r = c.post(server.url_orders, json=body, headers=server.bearer())
                assert r.status_code == 202, r.text
                ids.append(r.json()["eventId"])
            metrics = c.get(server.base_url + "/metrics", headers=server.bearer()).text
        report = {(r["what"], r["detail"]): r for r in cli(server, "contract", "drift")}
        found = report[("number_as_text", "orderEvent.lines[].buyerLine.deliverySchedule[].quantity")]
        assert (found["count"], found["first_event_id"], found["last_event_id"]) == (2, ids[0], ids[1])
        assert 'tcwebhook_contract_unknown_total{what="number_as_text"} 2.0' in metrics
        eventually(lambda: len(files(erp)) == 3, 20, what="the three orders in the erp sink")


def test_sync_mode_answers_stored(server_factory: ServerFactory, tmp_path: Path) -> None:
    """In mode = "sync" the accepting sink has the event before the answer, which is 202 "stored":
    the other sink holds it, so it is not "delivered" to the ERP."""
    raw, erp = tmp_path / "raw", tmp_path / "erp"
    server = server_factory.start("unknown-sync", (
        '[delivery]\nmode = "sync"\n'
        f'[[sinks]]\nname = "raw"\ntype = "files"\ndirectory = "{raw}"\naccept_unknown = true\n'
        f'[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "{erp}"\n'
    ))
    with server.client() as c:
        r = c.post(server.url_orders, json=unknown_body(), headers=server.bearer())
        assert (r.status_code, r.json()["status"]) == (202, "stored"), r.text
        assert len(files(raw)) == 1 and files(erp) == []
        known = c.post(server.url_orders, json=order_body(), headers=server.bearer())
        assert (known.status_code, known.json()["status"]) == (200, "delivered")
    shown = cli(server, "events", "show", r.json()["eventId"])
    assert {d["sink"]: d["status"] for d in shown["deliveries"]} == {"raw": "delivered", "erp": "unrecognised"}
