"""Delivery end to end: the real ``tcwebhook serve`` process, HTTPS in, real sinks out.

The ERP is a loopback HTTP server in this process (the reliability suite's ``ErpEndpoint``,
scripted here to fail on purpose), a folder, or a handler module written at test time and
imported by the server through ``PYTHONPATH``. State is read back the way an operator would:
through the inbox API and the ``tcwebhook events`` commands.
"""

from __future__ import annotations

import contextlib
import csv
import http.server
import io
import json
import os
import random
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from tests.reliability.conftest import FAST_DELIVERY, ErpEndpoint, message_id_of, order_event, wait_until
from tests.support.bodies import order_body, shipment_body
from tests.support.inbox import inbox_events
from tests.support.servers import CLI, RunningServer, ServerFactory

from tcwebhook.inbox.base import StoredEvent

JSON = {"content-type": "application/json"}
SEED = 20250502  # the ERP's random failures repeat from run to run (thread timing aside)
SETTLED = ("delivered", "dead", "superseded")


# -- the ERP ------------------------------------------------------------------------------------


@dataclass
class ScriptedErp(ErpEndpoint):
    """``ErpEndpoint`` that also answers 503 at random (seeded) and 422 for chosen messageIds.

    Successful calls go through ``ErpEndpoint``'s own handler, so ``accepted`` keeps its
    meaning: (X-Tcwebhook-Key, X-Tcwebhook-Event-Id, body) of every 2xx, in answer order.
    """

    fail_ratio: float = 0.0
    seed: int = 0
    refused: set[str] = field(default_factory=set)  # messageIds answered 422
    calls: list[tuple[str | None, int]] = field(default_factory=list)  # (event id, status) of every call
    rng: random.Random = field(init=False)
    connections: set[socket.socket] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def start(self) -> None:
        super().start()
        assert self._server is not None
        erp = self
        # ErpEndpoint's handler class, made in its start(): extended, not copied.
        accepting = cast(type[http.server.BaseHTTPRequestHandler], self._server.RequestHandlerClass)

        class Scripted(accepting):  # type: ignore[misc,valid-type]
            rfile: io.BufferedIOBase

            def setup(self) -> None:
                super().setup()
                with erp._lock:
                    erp.connections.add(self.connection)

            def finish(self) -> None:
                with erp._lock:
                    erp.connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                event_id = self.headers.get("x-tcwebhook-event-id")
                with erp._lock:
                    if message_id_of(body) in erp.refused:
                        status = 422
                    elif erp.rng.random() < erp.fail_ratio:
                        status = 503
                    else:
                        status = 200
                    erp.calls.append((event_id, status))
                if status != 200:
                    self._answer(status)
                    return
                # Hand the body already read to the accepting handler; the connection's own
                # stream comes back afterwards so keep-alive keeps working.
                stream, self.rfile = self.rfile, io.BytesIO(body)
                try:
                    super().do_POST()
                finally:
                    self.rfile = stream

        self._server.RequestHandlerClass = Scripted

    def stop(self) -> None:
        """Down for everyone: also drop the keep-alive connections the sink already holds."""
        super().stop()
        with self._lock:
            open_connections, self.connections = list(self.connections), set()
        for sock in open_connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def accepted_event_ids(self) -> list[str | None]:
        with self._lock:
            return [event_id for _, event_id, _ in self.accepted]

    def statuses(self) -> list[int]:
        with self._lock:
            return [status for _, status in self.calls]


@pytest.fixture
def erp() -> Iterator[ScriptedErp]:
    endpoint = ScriptedErp(seed=SEED)
    endpoint.start()
    yield endpoint
    endpoint.stop()


def http_sink(erp: ScriptedErp) -> str:
    return f'[[sinks]]\nname = "erp"\ntype = "http"\nurl = "{erp.url}"\ntimeout = 2\n'


# -- the ERP as python code, imported by the server ---------------------------------------------

HANDLERS = '''
"""ERP handlers for the end-to-end delivery tests (written at test time)."""

import os
from pathlib import Path

from tcwebhook import Event, PermanentError

STATE = Path(os.environ["E2E_HANDLER_STATE"])


def _record(event: Event) -> None:
    with (STATE / "handled.txt").open("a", encoding="ascii") as fh:
        fh.write(event.event_id + "\\n")


def record(event: Event) -> None:
    """Every event, except the purchase order the ERP refuses for good."""
    if event.purchase_order_number == "PO-REFUSED":
        raise PermanentError("the ERP refuses PO-REFUSED")
    _record(event)


async def slow_once(event: Event) -> None:
    """Takes half a minute while the file "slow" exists (removed on the way), else at once."""
    import asyncio

    slow = STATE / "slow"
    if slow.exists():
        slow.unlink()
        await asyncio.sleep(30)
    _record(event)


def by_event_name(event: Event) -> None:
    """Rejections are refused for good; updates fail until the file "fixed" exists."""
    if event.event_name == "OrderLinesRejectedBySupplier":
        raise PermanentError("the ERP cannot book a rejection")
    if event.event_name == "OrderLinesUpdatedByBuyer" and not (STATE / "fixed").exists():
        raise RuntimeError("ERP database is locked")
    _record(event)
'''


@dataclass
class HandlerModule:
    """The module ``e2e_erp_handlers`` in a folder of its own, and the state folder it writes to."""

    path: Path
    state: Path

    @property
    def env(self) -> dict[str, str]:
        pythonpath = os.pathsep.join(p for p in (str(self.path), os.environ.get("PYTHONPATH")) if p)
        return {"PYTHONPATH": pythonpath, "E2E_HANDLER_STATE": str(self.state)}

    def handled(self) -> list[str]:
        log = self.state / "handled.txt"
        return log.read_text(encoding="ascii").split() if log.exists() else []


@pytest.fixture
def handlers(tmp_path: Path) -> HandlerModule:
    module = HandlerModule(tmp_path / "handlers", tmp_path / "handler-state")
    module.path.mkdir()
    module.state.mkdir()
    (module.path / "e2e_erp_handlers.py").write_text(textwrap.dedent(HANDLERS), encoding="utf-8")
    return module


# -- talking to the server ----------------------------------------------------------------------


def post(server: RunningServer, client: httpx.Client, body: dict[str, Any], url: str | None = None) -> httpx.Response:
    return client.post(url or server.url_orders, content=json.dumps(body).encode(), headers={**server.bearer(), **JSON})


def stored(server: RunningServer, client: httpx.Client, body: dict[str, Any], url: str | None = None) -> str:
    """POST one event in async mode; its event id."""
    r = post(server, client, body, url)
    assert r.status_code == 202, r.text
    return str(r.json()["eventId"])


def send_concurrently(server: RunningServer, bodies: Sequence[dict[str, Any]], threads: int) -> list[int]:
    """POST ``bodies`` from ``threads`` clients at once (thread i sends every i-th body)."""
    start = threading.Barrier(threads)

    def run(part: Sequence[dict[str, Any]]) -> list[int]:
        with server.client() as client:
            start.wait(10)
            return [post(server, client, body).status_code for body in part]

    with ThreadPoolExecutor(threads) as pool:
        parts = pool.map(run, [bodies[i::threads] for i in range(threads)])
        return [status for part in parts for status in part]


def cli(server: RunningServer, *args: str) -> Any:
    """Run ``tcwebhook <args> --json --config <server's config>``; the parsed JSON it prints."""
    assert server.config_path is not None
    done = subprocess.run(
        [*CLI, *args, "--json", "--config", str(server.config_path)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout)


def settled(server: RunningServer, count: int, timeout: float) -> list[StoredEvent]:
    """Wait until ``count`` events are stored and none is pending; newest first."""
    events: list[StoredEvent] = []

    def done() -> bool:
        events[:] = inbox_events(server)
        return len(events) == count and all(e.status in SETTLED for e in events)

    if not wait_until(done, timeout, interval=0.2):
        pending = [e.event_id for e in events if e.status not in SETTLED]
        raise AssertionError(f"{len(events)}/{count} events stored, still pending: {pending}\n{server.logs()[-3000:]}")
    return events


def status_of(server: RunningServer, event_id: str) -> str:
    return next(e.status for e in inbox_events(server) if e.event_id == event_id)


def arrival_order(events: Sequence[StoredEvent]) -> dict[str | None, list[str]]:
    """Event ids per key, oldest first (by seq: the order the store took them in)."""
    per_key: dict[str | None, list[str]] = {}
    for event in sorted(events, key=lambda e: e.seq):
        per_key.setdefault(event.key, []).append(event.event_id)
    return per_key


def first_deliveries(erp: ScriptedErp) -> dict[str | None, list[str]]:
    """Event ids per key in the order the ERP first accepted them (redeliveries left out)."""
    per_key: dict[str | None, list[str]] = {}
    seen: set[str] = set()
    for key, event_id, _body in list(erp.accepted):
        assert event_id is not None
        if event_id not in seen:
            seen.add(event_id)
            per_key.setdefault(key, []).append(event_id)
    return per_key


def assert_bodies_intact(erp: ScriptedErp, events: Sequence[StoredEvent]) -> None:
    """What the ERP got under each event id is that event's body, byte for byte."""
    bodies = {e.event_id: e.body for e in events}
    for _key, event_id, body in list(erp.accepted):
        assert event_id in bodies and body == bodies[event_id]


# -- the tests ------------------------------------------------------------------------------------

ORDERS = 10
PER_ORDER = 12


class TestFifoUnderRandomFailures:
    """Concurrent senders and an ERP failing 30% at random: each order reaches it in arrival order."""

    def test_first_deliveries_follow_arrival_order(self, server_factory: ServerFactory, erp: ScriptedErp) -> None:
        erp.fail_ratio = 0.3
        server = server_factory.start("fifo", extra=FAST_DELIVERY + http_sink(erp))
        bodies = [order_event(f"fifo-{k:02d}", n) for n in range(PER_ORDER) for k in range(ORDERS)]

        statuses = send_concurrently(server, bodies, threads=4)

        assert statuses == [202] * len(bodies)
        events = settled(server, len(bodies), timeout=45)
        assert {e.status for e in events} == {"delivered"}
        assert {e.message_id for e in events} == {b["meta"]["messageId"] for b in bodies}
        assert len(arrival_order(events)) == ORDERS
        assert first_deliveries(erp) == arrival_order(events)
        assert_bodies_intact(erp, events)
        failures = erp.statuses().count(503)
        assert failures >= len(bodies) // 10, f"only {failures} random failures: the ERP was not flaky"


class TestErpOutage:
    """The ERP refuses connections for ~3 s while events keep arriving: all arrive later, in order."""

    def test_nothing_lost_in_order(self, server_factory: ServerFactory, erp: ScriptedErp) -> None:
        server = server_factory.start("outage", extra=FAST_DELIVERY + http_sink(erp))
        with server.client() as client:
            before = [order_event(f"outage-{k}", 0) for k in range(4)]
            assert [post(server, client, b).status_code for b in before] == [202] * 4
            settled(server, len(before), timeout=15)

            erp.stop()
            down_at = time.monotonic()
            during: list[dict[str, Any]] = []
            for n in range(1, 31):  # ~3 s of traffic and at least 10 events (a slow machine), at most 30
                if n > 10 and time.monotonic() - down_at >= 3.0:
                    break
                body = order_event(f"outage-{n % 4}", n)
                assert post(server, client, body).status_code == 202
                during.append(body)
                time.sleep(0.1)  # pacing the senders, not waiting for anything
            refused_calls = len(erp.calls)
            erp.start()  # the same port again
        outage = time.monotonic() - down_at

        events = settled(server, len(before) + len(during), timeout=30)
        assert outage >= 2.5 and len(during) >= 10
        assert {e.status for e in events} == {"delivered"}
        assert set(erp.accepted_event_ids()) == {e.event_id for e in events}
        assert first_deliveries(erp) == arrival_order(events)
        assert_bodies_intact(erp, events)
        assert refused_calls == len(before), "the ERP saw calls while it was down"
        # The sink kept trying during the outage, and the failed attempts say why.
        first_down = next(e for e in events if e.message_id == during[0]["meta"]["messageId"])
        attempts = cli(server, "events", "show", first_down.event_id)["attempts"]
        assert [a["outcome"] for a in attempts][-1] == "delivered"
        assert len(attempts) >= 3
        assert all("cannot reach" in (a["error"] or "") for a in attempts[:-1]), attempts


class TestPermanentFailure:
    """A 422 dead-letters the event with its reason; after the ERP is fixed a replay delivers it."""

    def test_dead_then_replayed(self, server_factory: ServerFactory, erp: ScriptedErp) -> None:
        server = server_factory.start("permanent", extra=FAST_DELIVERY + http_sink(erp))
        bodies = [order_event("perm-order", n) for n in range(3)]
        erp.refused.add(bodies[1]["meta"]["messageId"])
        with server.client() as client:
            assert [post(server, client, b).status_code for b in bodies] == [202] * 3

        events = settled(server, 3, timeout=15)
        by_message = {e.message_id: e for e in events}
        refused = by_message[bodies[1]["meta"]["messageId"]]
        assert refused.status == "dead"
        # A dead event does not hold back the later events of its order.
        assert by_message[bodies[2]["meta"]["messageId"]].status == "delivered"

        dead = cli(server, "events", "dead")
        assert [d["event_id"] for d in dead] == [refused.event_id]
        assert "HTTP 422" in dead[0]["errors"]["erp"]
        assert refused.event_id not in erp.accepted_event_ids()
        assert erp.statuses().count(422) == 1, "a permanent failure was retried"

        erp.refused.clear()
        replayed = cli(server, "events", "replay", refused.event_id)
        assert replayed["requeued"] == 1 and replayed["missing"] == []
        assert wait_until(lambda: status_of(server, refused.event_id) == "delivered", timeout=15)
        assert erp.accepted_event_ids().count(refused.event_id) == 1
        assert cli(server, "events", "dead") == []


class TestSupersededShipments:
    """An older state of a shipment arriving after a newer one was delivered is superseded, not sent."""

    def test_older_state_never_reaches_erp(self, server_factory: ServerFactory, erp: ScriptedErp) -> None:
        server = server_factory.start("superseded", extra=FAST_DELIVERY + http_sink(erp))
        newer = shipment_body("ShipmentIssuedBySupplier")
        shipment_id = newer["shipment"]["id"]
        older = shipment_body("ShipmentUpdated")
        older["shipment"]["id"] = shipment_id
        older["shipment"]["meta"]["lastUpdatedAt"] = "2025-06-10T05:00:00.000Z"  # before the newer one
        latest = shipment_body("ShipmentUpdated")
        latest["shipment"]["id"] = shipment_id
        latest["shipment"]["meta"]["lastUpdatedAt"] = "2025-06-11T09:00:00.000Z"

        with server.client() as client:
            newer_id = stored(server, client, newer, server.url_shipments)
            assert wait_until(lambda: newer_id in erp.accepted_event_ids(), timeout=15)
            older_id = stored(server, client, older, server.url_shipments)
            assert wait_until(lambda: status_of(server, older_id) == "superseded", timeout=15)
            # A state newer than the delivered one still flows.
            latest_id = stored(server, client, latest, server.url_shipments)

        events = settled(server, 3, timeout=15)
        assert {e.event_id: e.status for e in events} == {
            newer_id: "delivered",
            older_id: "superseded",
            latest_id: "delivered",
        }
        assert older_id not in {event_id for event_id, _ in erp.calls}
        assert erp.accepted_event_ids() == [newer_id, latest_id]
        shown = cli(server, "events", "show", older_id)
        assert [d["status"] for d in shown["deliveries"]] == ["superseded"]
        assert "superseded" in (shown["deliveries"][0]["last_error"] or "")


class TestTwoSinks:
    """A files sink and a python handler each get every event; a handler's PermanentError stays its own."""

    def test_tracked_per_sink(self, server_factory: ServerFactory, handlers: HandlerModule, tmp_path: Path) -> None:
        drop = tmp_path / "erp-import"
        extra = FAST_DELIVERY + (
            f'[[sinks]]\nname = "erp-files"\ntype = "files"\ndirectory = "{drop}"\n'
            '[[sinks]]\nname = "handler"\ntype = "python"\ncallable = "e2e_erp_handlers:record"\n'
        )
        server = server_factory.start("two-sinks", extra=extra, env=handlers.env)
        orders = [order_body("OrderLinesConfirmedBySupplier") for _ in range(6)]
        same_order = orders[0]["orderEvent"]["orderId"]
        for body in orders[1:3]:
            body["orderEvent"]["orderId"] = same_order  # three events of one order
        orders[1]["orderEvent"]["buyerOrder"]["purchaseOrderNumber"] = "PO-REFUSED"  # the middle one
        shipments = [shipment_body() for _ in range(3)]
        with server.client() as client:
            ids = [stored(server, client, b) for b in orders]
            ids += [stored(server, client, b, server.url_shipments) for b in shipments]
        refused_id = ids[1]

        events = settled(server, len(ids), timeout=20)
        assert {e.event_id: e.status for e in events} == {i: ("dead" if i == refused_id else "delivered") for i in ids}
        files = sorted(p.name for p in drop.iterdir() if not p.name.startswith("."))
        assert sorted(name.rsplit("_", 1)[1].removesuffix(".json") for name in files) == sorted(ids)
        handled = handlers.handled()
        assert sorted(handled) == sorted(i for i in ids if i != refused_id)
        assert handled.index(ids[0]) < handled.index(ids[2])  # FIFO per order in the handler too

        shown = cli(server, "events", "show", refused_id)
        deliveries = {d["sink"]: d for d in shown["deliveries"]}
        assert deliveries["erp-files"]["status"] == "delivered"
        assert deliveries["handler"]["status"] == "dead"
        assert "the ERP refuses PO-REFUSED" in deliveries["handler"]["last_error"]
        assert [a["outcome"] for a in shown["attempts"] if a["sink"] == "handler"] == ["permanent"]
        dead = cli(server, "events", "dead")
        assert [(d["event_id"], list(d["errors"])) for d in dead] == [(refused_id, ["handler"])]


class TestOrderPayload:
    """``payload = "order"`` through a real serve: each file holds the whole order as the book has it."""

    def test_files_hold_the_current_order(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        from decimal import Decimal

        from tests.orderbook.sequences import SEQUENCE, json_body, xml_body

        drop, csvs = tmp_path / "erp-json", tmp_path / "erp-csv"
        extra = FAST_DELIVERY + (
            f'[[sinks]]\nname = "erp-json"\ntype = "files"\ndirectory = "{drop}"\n'
            'payload = "order"\nformat = "json"\n'
            f'[[sinks]]\nname = "erp-csv"\ntype = "files"\ndirectory = "{csvs}"\n'
            'payload = "order"\nformat = "csv"\ncsv_delimiter = ";"\n'
        )
        server = server_factory.start("order-payload", extra=extra)
        ids = []
        with server.client() as client:
            for i, data in enumerate(SEQUENCE):  # the rejection comes as tXML, the rest as JSON
                xml = i == 2
                r = client.post(server.url_orders, content=xml_body(data) if xml else json_body(data),
                                headers={**server.bearer(), "Content-Type": "application/xml" if xml else
                                         "application/json"})
                assert r.status_code == 202, r.text
                ids.append(str(r.json()["eventId"]))
                # Each delivery sees the book after its own event: wait before sending the next.
                settled(server, i + 1, timeout=20)

        def named(folder: Path, event_id: str) -> Path:
            return next(p for p in folder.iterdir() if event_id in p.name and not p.name.startswith("."))

        last = json.loads(named(drop, ids[-1]).read_text(), parse_float=Decimal)
        assert (last["eventName"], last["eventId"]) == (SEQUENCE[-1]["eventName"], ids[-1])
        assert last["order"]["version"] == 4 and last["book"]["lineCount"] == 2
        l1, l2 = last["order"]["lines"]
        assert [(d["date"], d["quantity"]) for d in l1["deliverySchedule"]] == [("2026-06-09", 50), ("2026-07-08", 50)]
        assert l2["status"]["processStatus"] == "Rejected"
        assert [e["eventId"] for e in last["book"]["events"]] == ids
        confirmed = json.loads(named(drop, ids[1]).read_text())
        assert len(confirmed["order"]["lines"]) == 2  # the confirmation touched one line; the order has both

        rows = list(csv.DictReader(io.StringIO(named(csvs, ids[-1]).read_text(encoding="utf-8-sig")), delimiter=";"))
        assert [(r["line_position"], r["schedule_position"], r["delivery_date"]) for r in rows] == [
            ("0001", "01", "2026-06-09"), ("0001", "02", "2026-07-08"), ("0002", "01", "2026-06-15")]
        assert {r["event_id"] for r in rows} == {ids[-1]}


class TestSyncMode:
    """``mode = "sync"``: 200 delivered, 400 refused for good (dead), 503 until fixed, then 200 once."""

    def test_answers_follow_the_handler(self, server_factory: ServerFactory, handlers: HandlerModule) -> None:
        extra = (
            FAST_DELIVERY
            + 'mode = "sync"\n'
            + '[[sinks]]\nname = "handler"\ntype = "python"\ncallable = "e2e_erp_handlers:by_event_name"\n'
        )
        server = server_factory.start("sync", extra=extra, env=handlers.env)
        good = order_body("OrderIssuedByBuyer")
        refused = order_body("OrderLinesRejectedBySupplier")
        flaky = order_body("OrderLinesUpdatedByBuyer")

        with server.client() as client:
            r = post(server, client, good)
            assert r.status_code == 200, r.text
            good_id = r.json()["eventId"]
            assert handlers.handled() == [good_id]  # delivered before the answer

            r = post(server, client, refused)
            assert r.status_code == 400, r.text
            assert r.json()["error"] == "rejected_by_erp"
            assert "cannot book a rejection" not in r.json()["detail"]  # the ERP's text is not the sender's
            refused_id = r.json()["eventId"]
            assert status_of(server, refused_id) == "dead"
            shown = cli(server, "events", "show", refused_id)
            assert "cannot book a rejection" in (shown["attempts"][0]["error"] or "")
            r = post(server, client, refused)  # a resend is refused again, not handed to the ERP
            assert (r.status_code, r.json()["eventId"]) == (400, refused_id)

            r = post(server, client, flaky)
            assert r.status_code == 503, r.text
            assert r.headers.get("retry-after")
            flaky_id = r.json()["eventId"]
            # Parked for the sender's resend: we do not retry it ourselves (that would deliver twice).
            parked = cli(server, "events", "show", flaky_id)
            assert parked["status"] == "pending"
            assert [(d["status"], d["attempts"], d["next_attempt_at"]) for d in parked["deliveries"]] == [
                ("pending", 1, None)
            ]
            r = post(server, client, flaky)  # Tradecloud resends while the ERP is still broken
            assert r.status_code == 503, r.text

            (handlers.state / "fixed").touch()
            r = post(server, client, flaky)
            assert r.status_code == 200, r.text
            assert r.json() == {"status": "delivered", "eventId": flaky_id}
            r = post(server, client, flaky)  # one resend too many: answered, not delivered again
            assert r.status_code == 200, r.text

        assert handlers.handled() == [good_id, flaky_id]
        assert status_of(server, flaky_id) == "delivered"
        shown = cli(server, "events", "show", flaky_id)
        assert [a["outcome"] for a in shown["attempts"]] == ["transient", "transient", "delivered"]
        assert "ERP database is locked" in (shown["attempts"][0]["error"] or "")
        assert [d["event_id"] for d in cli(server, "events", "dead")] == [refused_id]


class TestSyncDeadline:
    """``[delivery] sync_deadline``: past it the answer is 503 and the event is delivered in the background."""

    def test_late_delivery_is_answered_503_then_delivered(
        self, server_factory: ServerFactory, handlers: HandlerModule
    ) -> None:
        extra = (
            FAST_DELIVERY
            + 'mode = "sync"\nsync_deadline = 1.5\n'
            + '[[sinks]]\nname = "handler"\ntype = "python"\ncallable = "e2e_erp_handlers:slow_once"\n'
        )
        server = server_factory.start("sync-deadline", extra=extra, env=handlers.env)
        (handlers.state / "slow").touch()
        body = order_body("OrderIssuedByBuyer")
        with server.client() as client:
            started = time.monotonic()
            r = post(server, client, body)
            answered_in = time.monotonic() - started
            assert r.status_code == 503, r.text
            assert r.headers.get("retry-after")
            assert r.json()["error"] == "erp_unavailable"
            event_id = r.json()["eventId"]
            assert answered_in < 15  # the deadline, not the handler's 30 s
            # Stored, and delivered by the background loop without waiting for the sender's resend.
            assert wait_until(lambda: handlers.handled() == [event_id], timeout=20)
            assert wait_until(lambda: status_of(server, event_id) == "delivered", timeout=10)
            r = post(server, client, body)  # the sender's resend: answered, not delivered again
            assert (r.status_code, r.json()["status"]) == (200, "delivered")
        assert handlers.handled() == [event_id]
        shown = cli(server, "events", "show", event_id)
        assert [a["outcome"] for a in shown["attempts"]] == ["released", "delivered"]
        assert "sync_deadline" in (shown["attempts"][0]["error"] or "")

    def test_deadline_above_55_s_stops_start_up(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("sync-deadline-bad", extra=FAST_DELIVERY + "sync_deadline = 58\n", wait=False)
        assert server.proc.wait(timeout=30) == 3
        assert "sync_deadline" in server.logs() and "60 s" in server.logs()
