"""`tcwebhook check-tls`: the table, JSON and exit codes, on the real receiver and broken setups."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from simulator.servers import Pki, ScriptedServer
from tcwebhook.cli.main import app
from tcwebhook.simulator.trust import SELF_SIGNED_MESSAGE

runner = CliRunner()


def check(*args: str) -> Any:
    return runner.invoke(app, ["check-tls", *args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("checktls-pki"))


class TestReceiver:
    """The real receiver's TLS set-up passes, including an authenticated test event."""

    def test_passes(self, dev_server: Any) -> None:
        result = check(dev_server.url_orders, "--ca-bundle", str(dev_server.ca_path), "--token", dev_server.token)
        assert result.exit_code == 0, result.output
        assert "Test event (Bearer auth)" in result.stdout and "OK" in result.stdout
        assert dev_server.token not in result.output

    def test_json(self, dev_server: Any) -> None:
        result = check(
            dev_server.url_shipments, "--ca-bundle", str(dev_server.ca_path), "--basic", dev_server.basic, "--json"
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["ok"] is True
        statuses = {c["name"]: c["status"] for c in report["checks"]}
        assert statuses["Test event (Basic auth)"] == "PASS"
        assert statuses["Request without credentials refused"] == "PASS"


class TestBroken:
    """A broken setup exits 1 with a FAIL line naming the problem."""

    def test_self_signed(self, pki: Pki) -> None:
        with ScriptedServer(pki.self_signed()) as server:
            result = check(server.url, "--ca-bundle", str(pki.ca_path), "--json")
        assert result.exit_code == 1
        checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
        assert checks["Not self-signed"] == {"name": "Not self-signed", "status": "FAIL", "detail": SELF_SIGNED_MESSAGE}

    def test_table(self, pki: Pki) -> None:
        with ScriptedServer(pki.wrong_host()) as server:
            result = check(server.url, "--ca-bundle", str(pki.ca_path))
        assert result.exit_code == 1
        line = next(ln for ln in result.stdout.splitlines() if "Hostname matches" in ln)
        assert "FAIL" in line and "wrong.example" in line
        assert "1 check(s) failed" in result.stdout

    @pytest.mark.parametrize(
        ("args", "code"),
        [
            (["http://localhost/hook"], 2),
            (["https://localhost/hook", "--event", "NoSuchEvent"], 2),
            (["https://localhost/hook", "--ca-bundle", "/nonexistent.pem"], 3),
        ],
    )
    def test_usage(self, args: list[str], code: int) -> None:
        assert check(*args).exit_code == code
