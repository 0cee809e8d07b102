"""The contract-drift report through a real `serve` over TLS: unknown things are stored and
answered 202, recorded with counts and first/last event, shown by `tcwebhook contract drift`
and counted in /metrics; a duplicate adds nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid

from tests.conftest import CLI, ServerFactory
from tests.receiver.test_endpoints import order_body


def drift_report(server_config: str, *args: str) -> list[dict[str, object]]:
    done = subprocess.run([*CLI, "contract", "drift", "--config", server_config, "--json", *args],
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return list(json.loads(done.stdout))


class TestDriftReport:
    """What the models did not know, as the operator sees it."""

    def test_recorded_reported_and_counted(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("drift")
        ids = []
        with server.client() as c:
            for n in range(3):
                body = order_body("OrderLinesTeleportedByBuyer" if n == 2 else "OrderIssuedByBuyer")
                body["orderEvent"]["carbonFootprint"] = {"kg": n}
                r = c.post(server.url_orders, json=body, headers=server.bearer())
                assert r.status_code == 202, r.text
                ids.append(r.json()["eventId"])
            again = c.post(server.url_orders, json=body, headers=server.bearer())  # the last one resent
            assert again.status_code == 200
            plain = c.post(server.url_orders, json=order_body(), headers=server.bearer())
            assert plain.status_code == 202
            metrics = c.get(server.base_url + "/metrics", headers=server.bearer()).text
        assert server.config_path is not None
        report = {(r["what"], r["detail"]): r for r in drift_report(str(server.config_path))}
        assert set(report) == {("field", "orderEvent.carbonFootprint"), ("event_name", "OrderLinesTeleportedByBuyer")}
        field = report[("field", "orderEvent.carbonFootprint")]
        assert (field["count"], field["first_event_id"], field["last_event_id"]) == (3, ids[0], ids[2])
        name = report[("event_name", "OrderLinesTeleportedByBuyer")]
        assert (name["count"], name["first_event_id"], name["last_event_id"]) == (1, ids[2], ids[2])
        assert drift_report(str(server.config_path), "--since", "0") == []  # nothing seen in the last 0 s

        def counted(what: str) -> float:
            match = re.search(rf'^tcwebhook_contract_unknown_total{{what="{what}"}} (\S+)$', metrics, re.M)
            assert match, metrics
            return float(match.group(1))

        assert (counted("field"), counted("event_name"), counted("enum_value")) == (3.0, 1.0, 0.0)

    def test_table_for_people(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("drift-table")
        body = order_body()
        body["orderEvent"][f"x[/]\x1b[31m{uuid.uuid4().hex[:4]}"] = 1  # markup and escapes, shown as text
        with server.client() as c:
            assert c.post(server.url_orders, json=body, headers=server.bearer()).status_code == 202
        assert server.config_path is not None
        done = subprocess.run([*CLI, "contract", "drift", "--config", str(server.config_path)],
                              capture_output=True, timeout=60, check=False, env={**os.environ, "COLUMNS": "300"})
        assert done.returncode == 0, done.stderr.decode()
        out = done.stdout.decode()
        assert "unknown field" in out and "orderEvent.x[/]\\x1b[31m" in out
        assert "\x1b" not in out
