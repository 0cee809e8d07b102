"""One trace from Tradecloud's request to the ERP's answer, across `serve` and a `worker` process."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import httpx
from tests.conftest import CLI, TOKEN, ServerFactory, refused_port
from tests.receiver.test_endpoints import order_body
from tests.reliability.conftest import wait_until
from tests.sinks.conftest import ErpApp, start_erp
from tests.telemetry.collector import Collector

SERVER_KIND, CLIENT_KIND = 2, 3  # OTLP's SpanKind numbers
STATUS_ERROR = 2


def _telemetry(collector: Collector) -> str:
    return (
        f'[telemetry]\nenabled = true\nendpoint = "{collector.url}"\nexport_delay_ms = 50\n'
        "[delivery]\npoll_interval = 0.1\ninitial_delay = 0.1\nmax_delay = 0.3\njitter = 0\n"
    )


def _sink(url: str) -> str:
    return f'[[sinks]]\nname = "erp"\ntype = "http"\nurl = "{url}"\ntimeout = 5\n'


class TestOneTrace:
    def test_receive_store_and_a_worker_delivery_share_the_trace(
        self, server_factory: ServerFactory, collector: Collector, tmp_path: Path
    ) -> None:
        erp = start_erp(ErpApp())
        try:
            with refused_port() as down:
                # serve tries first against an ERP that is down, then stops; the worker delivers.
                server = server_factory.start("node", extra=_telemetry(collector) + _sink(f"http://127.0.0.1:{down}/x"))
                body = order_body()
                with server.client() as client:
                    reply = client.post(server.url_orders, json=body, headers=server.bearer())
                assert reply.status_code == 202
                event_id = reply.json()["eventId"]
                assert wait_until(lambda: "delivery_failed" in server.logs(), 20), server.logs()
                assert server.stop() == 0
            directory = server.config_path.parent if server.config_path else tmp_path
            config, _ = server_factory.write_config(directory, _telemetry(collector) + _sink(erp.base_url + "/ok"))
            log = directory / "worker.log"
            with log.open("wb") as out:
                worker = subprocess.Popen([*CLI, "worker", "--config", str(config)], stdout=out,
                                          stderr=subprocess.STDOUT, cwd=directory)
            try:
                assert wait_until(lambda: len(erp.app.received) >= 1, 30), log.read_text()
            finally:
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(20) == 0, log.read_text()
        finally:
            erp.stop()

        # The exporters flush on shutdown; both processes have stopped.
        assert wait_until(lambda: any(s.resource.get("tcwebhook.role") == "worker" for s in collector.all()), 10)
        requests = [s for s in collector.all() if s.kind == SERVER_KIND]
        assert len(requests) == 1
        request = requests[0]
        trace_id = request.trace_id
        assert request.name == "POST orders"
        assert request.attributes["http.response.status_code"] == 202
        assert request.attributes["tcwebhook.event_id"] == event_id
        assert request.attributes["tcwebhook.order_id"] == body["orderEvent"]["orderId"]
        assert request.attributes["tcwebhook.message_id"] == body["meta"]["messageId"]
        assert request.attributes["tcwebhook.event_name"] == "OrderIssuedByBuyer"
        assert request.resource["service.name"] == "tcwebhook"
        assert request.resource["tcwebhook.role"] == "serve"

        children = {s.name: s for s in collector.all() if s.parent_span_id == request.span_id}
        assert {"auth", "parse", "store"} <= children.keys()
        store = children["store"]

        deliveries = [s for s in collector.all() if s.name == "deliver erp"]
        by_role = {s.resource["tcwebhook.role"]: s for s in deliveries}
        assert {"serve", "worker"} <= by_role.keys()
        for attempt in deliveries:
            assert attempt.trace_id == trace_id  # the same trace, also from another process
            assert attempt.parent_span_id == store.span_id
            assert attempt.attributes["tcwebhook.event_id"] == event_id
        assert by_role["serve"].status_code == STATUS_ERROR
        assert by_role["worker"].attributes["tcwebhook.delivery.status"] == "delivered"

        worker_span = by_role["worker"].span_id
        sink_calls = [s for s in collector.all() if s.name == "sink erp" and s.parent_span_id == worker_span]
        assert len(sink_calls) == 1 and sink_calls[0].kind == CLIENT_KIND
        # The ERP saw the sink call's span as its parent.
        traceparent = erp.app.received[0].headers["traceparent"]
        assert traceparent.startswith(f"00-{trace_id}-{sink_calls[0].span_id}-")

        # Never a secret or a body on a span.
        flat = json.dumps([[s.attributes, s.resource] for s in collector.all()])
        assert TOKEN not in flat
        assert "PO-000123" not in flat

        # Log lines carry the ids, so logs and traces join.
        lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
        logged = [line for line in lines if line.get("event") == "request" and line.get("event_id") == event_id]
        assert logged and logged[0]["trace_id"] == trace_id

    def test_off_by_default(self, server_factory: ServerFactory, collector: Collector) -> None:
        erp = start_erp(ErpApp())
        try:
            server = server_factory.start("quiet", extra=_sink(erp.base_url + "/ok"))
            with server.client() as client:
                reply = client.post(server.url_orders, json=order_body(), headers=server.bearer())
            assert reply.status_code == 202
            assert wait_until(lambda: len(erp.app.received) == 1, 20)
            assert server.stop() == 0
        finally:
            erp.stop()
        assert "traceparent" not in erp.app.received[0].headers
        assert collector.requests == 0
        assert '"trace_id"' not in server.logs()


def test_sender_traceparent_is_continued(server_factory: ServerFactory, collector: Collector) -> None:
    """A sender that traces its calls sees our request span as a child of its own."""
    server = server_factory.start("sender", extra=_telemetry(collector))
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with httpx.Client(verify=server.ssl_context(), timeout=10) as client:
        reply = client.post(server.url_orders, json=order_body(), headers={**server.bearer(), "traceparent": parent})
    assert reply.status_code == 202
    assert server.stop() == 0
    assert wait_until(lambda: any(s.kind == SERVER_KIND for s in collector.all()), 10)
    request = next(s for s in collector.all() if s.kind == SERVER_KIND)
    assert request.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert request.parent_span_id == "b7ad6b7169203331"
