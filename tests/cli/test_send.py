"""`tcwebhook send` end to end: against the real receiver (dev CA) and scripted loopback servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from simulator.servers import Pki, ScriptedServer
from tcwebhook.cli.main import app
from tcwebhook.simulator.trust import SELF_SIGNED_MESSAGE

runner = CliRunner()


def send(*args: str) -> Any:
    return runner.invoke(app, ["send", *args])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("send-pki"))


@pytest.fixture
def scripted(pki: Pki) -> Iterator[ScriptedServer]:
    server = ScriptedServer(pki.good()).start()
    yield server
    server.stop()


class TestAgainstReceiver:
    """Every documented event name, in both formats, is accepted by the real receiver."""

    @pytest.mark.parametrize("fmt", ["json", "txml"])
    def test_every_event_name(self, dev_server: Any, fmt: str) -> None:
        result = send(
            dev_server.url_orders,
            "--shipment-url", dev_server.url_shipments,
            "--ca-bundle", str(dev_server.ca_path),
            "--token", dev_server.token,
            "--events", "mix",
            "--count", "98",  # one full cycle: each (family, name) pair once
            "--concurrency", "4",
            "--format", fmt,
            "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["accepted"] == 98 and summary["not_accepted"] == 0
        assert set(summary["status"]) <= {"200", "201", "202"}

    @pytest.mark.parametrize("route", ["orders", "shipments"])
    def test_default_events_fit_the_url(self, dev_server: Any, route: str) -> None:
        url = dev_server.url_orders if route == "orders" else dev_server.url_shipments
        result = send(url, "--ca-bundle", str(dev_server.ca_path), "--token", dev_server.token, "--count", "30", "-q")
        assert result.exit_code == 0, result.output
        assert "status 202" in result.stdout or "status 200" in result.stdout

    def test_basic_auth_and_duplicates(self, dev_server: Any) -> None:
        result = send(
            dev_server.url_orders,
            "--ca-bundle", str(dev_server.ca_path),
            "--basic", dev_server.basic,
            "--events", "order,documents",
            "--count", "20",
            "--duplicate-rate", "0.3",
            "--seed", "4",
            "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["accepted"] == 20

    @pytest.mark.parametrize(
        ("route", "events", "id_in"), [("orders", "order", "path"), ("shipments", "shipment", "query")]
    )
    def test_get_variant(self, dev_server: Any, route: str, events: str, id_in: str) -> None:
        url = dev_server.url_orders if route == "orders" else dev_server.url_shipments
        result = send(
            url, "--ca-bundle", str(dev_server.ca_path), "--token", dev_server.token,
            "--get", "--id-in", id_in, "--events", events, "--count", "3", "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output

    def test_wrong_token_exits_1(self, dev_server: Any) -> None:
        result = send(
            dev_server.url_orders, "--ca-bundle", str(dev_server.ca_path), "--token", "not-the-token",
            "--events", "OrderIssuedByBuyer", "--quiet",
        )  # fmt: skip
        assert result.exit_code == 1
        assert "status 401" in result.stdout and "not-the-token" not in result.output


class TestScripted:
    """Exit codes, progress lines and the summary, against a server answering scripted codes."""

    def test_retry_then_accepted(self, pki: Pki, scripted: ScriptedServer) -> None:
        scripted.set_script([503, 200])
        result = send(scripted.url, "--ca-bundle", str(pki.ca_path), "--initial-wait", "0.01")
        assert result.exit_code == 0, result.output
        assert "↻ 503" in result.stderr and "retry in 0.01 s" in result.stderr
        assert "status 200" in result.stdout and "latency p99" in result.stdout

    def test_final_code_exits_1(self, pki: Pki, scripted: ScriptedServer) -> None:
        scripted.set_script([400], default=202)
        result = send(scripted.url, "--ca-bundle", str(pki.ca_path), "--count", "3", "--json")
        assert result.exit_code == 1
        summary = json.loads(result.stdout)
        assert summary["status"] == {"202": 2, "400": 1} and summary["retries"] == 0
        assert len(scripted.arrivals) == 3

    def test_gave_up(self, pki: Pki, scripted: ScriptedServer) -> None:
        scripted.set_script([], default=504)
        result = send(scripted.url, "--ca-bundle", str(pki.ca_path), "--max-retries", "2", "--initial-wait", "0.01")
        assert result.exit_code == 1
        assert "gave up after 2 retries" in result.stderr and len(scripted.arrivals) == 3

    def test_body_file(self, pki: Pki, scripted: ScriptedServer, tmp_path: Path) -> None:
        body = tmp_path / "event.json"
        body.write_bytes(b'{"eventName":"OrderIssuedByBuyer","orderEvent":{}}')
        result = send(scripted.url, "--ca-bundle", str(pki.ca_path), "--body", str(body), "--count", "2", "-q")
        assert result.exit_code == 0, result.output
        assert [a.body for a in scripted.wait_for(2)] == [body.read_bytes()] * 2

    def test_self_signed_refused(self, pki: Pki) -> None:
        with ScriptedServer(pki.self_signed()) as server:
            result = send(server.url, "--ca-bundle", str(pki.ca_path), "--count", "5")
        assert result.exit_code == 1
        assert SELF_SIGNED_MESSAGE in " ".join(result.stderr.split())
        assert "not sent" in result.stdout and server.arrivals == []

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["http://localhost/hook"], "only calls HTTPS"),
            (["https://localhost/hook", "--token", "t", "--basic", "u:p"], "not both"),
            (["https://localhost/hook", "--events", "Nope"], "unknown event"),
            (["https://localhost/hook", "--get", "--id-in", "header"], "'header' is not one of"),
            (["https://localhost/hook", "--get", "--body", "x.json"], "exclude each other"),
        ],
    )
    def test_usage_errors(self, args: list[str], message: str) -> None:
        result = send(*args)
        assert result.exit_code == 2 and message in " ".join(result.output.split())

    def test_missing_ca_bundle(self) -> None:
        result = send("https://localhost/hook", "--ca-bundle", "/nonexistent/ca.pem")
        assert result.exit_code == 3 and "does not exist" in result.stderr
