"""`tcwebhook connect` against the fake Tradecloud API and the real `tcwebhook serve` over HTTPS."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.servers import CLI, TOKEN, RunningServer, ServerFactory
from tests.tradecloud_api.fake_api import PASSWORD, USERNAME, FakeServer, FakeTradecloud

from tcwebhook.contract.names import ORDER_EVENT_NAMES, SHIPMENT_EVENT_NAMES


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


def start(factory: ServerFactory, fake_server: FakeServer, name: str, connect: str = "") -> RunningServer:
    extra = (
        f'[tradecloud]\napi_base = "{fake_server.api_base}"\nusername = "{USERNAME}"\npassword = "{PASSWORD}"\n'
        f'ca_bundle = "{fake_server.ca_path}"\ntimeout = 5\nmax_retries = 1\n'
        f'[connect]\ncompany_id = "{fake_server.fake.company_id}"\n{connect}\n'
    )
    server = factory.start(name, extra=extra)
    assert server.config_path is not None
    text = server.config_path.read_text()
    named = text.replace('host = "127.0.0.1"', 'host = "127.0.0.1"\npublic_hostname = "localhost"')
    # connect builds the webhook URLs from [server] port: the one the server bound, not 0.
    named = named.replace("port = 0\n", f"port = {server.port}\n", 1)
    server.config_path.write_text(named)
    return server


def connect(server: RunningServer, *args: str) -> tuple[int, Any, str]:
    assert server.config_path is not None
    done = subprocess.run(
        [*CLI, "connect", "--config", str(server.config_path), "--json", *args],
        capture_output=True,
        timeout=120,
        cwd=server.config_path.parent,
        check=False,
    )
    stdout = done.stdout.decode()
    return done.returncode, json.loads(stdout) if stdout.strip() else None, done.stderr.decode()


class TestConnect:
    """--show, --dry-run and setting the webhooks, after a TLS pre-flight."""

    def test_show_dry_run_then_set(
        self, server_factory: ServerFactory, fake_server: FakeServer, fake: FakeTradecloud
    ) -> None:
        server = start(server_factory, fake_server, "connect")
        fake.webhook_settings["orderEvents"] = {"webhookUrl": "https://old.example/hook", "bearerToken": "x" * 40}

        code, shown, _ = connect(server, "--show")
        assert code == 0 and shown["current"]["orderEvents"]["bearerToken"] == "xxxx…"

        code, planned, _ = connect(server, "--dry-run")
        assert code == 0 and any("orderEvents.webhookUrl" in line for line in planned["changes"])
        assert all(TOKEN not in line for line in planned["changes"])
        assert fake.webhook_settings["orderEvents"]["webhookUrl"] == "https://old.example/hook"

        code, done, _ = connect(server, "--ca-bundle", str(server.ca_path))
        assert code == 0 and done["applied"] == ["orderEvents", "orderDocumentsEvents", "shipment"]
        orders = fake.webhook_settings["orderEvents"]
        assert orders["webhookUrl"] == f"https://localhost:{server.port}/tradecloud/orders"
        assert orders["bearerToken"] == TOKEN and orders["format"] == "JSON" and orders["method"] == "POST"
        assert orders["singleDeliveryPerOrderLine"] is False
        assert sorted(orders["enabledEventNames"]) == sorted(ORDER_EVENT_NAMES - {"OrderLinesItemDetailsChanged"})
        assert "OrderLinesItemDetailsChangedBySupplier" in orders["enabledEventNames"]  # the name the API takes
        shipment = fake.webhook_settings["shipment"]
        assert shipment["webhookUrl"] == f"https://localhost:{server.port}/tradecloud/shipments"
        assert sorted(shipment["enabledEventNames"]) == sorted(SHIPMENT_EVENT_NAMES)

        code, again, _ = connect(server, "--ca-bundle", str(server.ca_path))
        assert code == 0 and again["changes"] == []

    def test_refused_when_tradecloud_could_not_deliver(
        self, server_factory: ServerFactory, fake_server: FakeServer, fake: FakeTradecloud
    ) -> None:
        server = start(server_factory, fake_server, "untrusted", 'format = "txml"\nsingle_delivery = true')
        code, _, stderr = connect(server)  # the test CA is not a public CA: Tradecloud would refuse it
        assert code == 1 and "refused" in stderr
        assert fake.webhook_settings == {}
        code, planned, _ = connect(server, "--dry-run")
        assert code == 0 and any("orderEvents.format" in line and "tXML" in line for line in planned["changes"])


SERVICE_GID = 4242  # a group of the service, other than the caller's


class TestRotate:
    """--rotate: the receiver accepts the new token first, Tradecloud gets it, the old one is retired."""

    def test_rotation(self, server_factory: ServerFactory, fake_server: FakeServer, fake: FakeTradecloud) -> None:
        server = start(server_factory, fake_server, "rotate")
        assert server.config_path is not None
        code, _, _ = connect(server, "--ca-bundle", str(server.ca_path))
        assert code == 0 and fake.webhook_settings["orderEvents"]["bearerToken"] == TOKEN

        # root:tcwebhook 0640, as deploy/ installs it: the rewrite keeps owner, group and mode.
        if os.geteuid() != 0:
            pytest.skip("giving the config another group needs root")
        os.chown(server.config_path, 0, SERVICE_GID)
        os.chmod(server.config_path, 0o640)
        code, result, stderr = connect(
            server, "--rotate", "--pid", str(server.proc.pid), "--ca-bundle", str(server.ca_path), "--wait", "20"
        )
        assert code == 0, stderr
        assert result["rotated"] and result["retired"] == 1
        kept = server.config_path.stat()
        assert (kept.st_uid, kept.st_gid, stat.S_IMODE(kept.st_mode)) == (0, SERVICE_GID, 0o640)
        assert [p.name for p in server.config_path.parent.iterdir() if p.name.startswith(".")] == []
        tokens = tomllib.loads(server.config_path.read_text())["auth"]["bearer_tokens"]
        new = tokens[0]
        assert TOKEN not in tokens and len(tokens) == 2  # the second test token stays
        assert fake.webhook_settings["orderEvents"]["bearerToken"] == new
        assert fake.webhook_settings["shipment"]["bearerToken"] == new

        with server.client() as client:
            body = {"eventName": "OrderIssuedByBuyer", "orderEvent": {"orderId": "o-rot"}}
            fresh = client.post(server.url_orders, json=body, headers={"Authorization": f"Bearer {new}"})
            old = client.post(server.url_orders, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
        assert fresh.status_code == 202 and old.status_code == 401
        assert new not in server.logs()
