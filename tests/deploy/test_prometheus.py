"""Monitoring end to end: a real Prometheus scrapes `tcwebhook serve` over TLS with credentials,
loads the shipped alert rules, and promtool unit-tests them. The Grafana dashboard and the rules
only name metrics the server exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.servers import TOKEN, RunningServer, ServerFactory

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "tcwebhook.json"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
WAIT = 40.0

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is needed")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus (Debian package) is needed")


class TestRules:
    """The alert rules are valid and their unit tests pass."""

    @needs_promtool
    def test_check_rules(self) -> None:
        cmd = [PROMTOOL or "", "check", "rules", str(ALERTS)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "8 rules found" in out.stdout

    @needs_promtool
    def test_unit_tests(self) -> None:
        out = subprocess.run(
            [PROMTOOL or "", "test", "rules", str(ALERTS_TEST)], capture_output=True, text=True, timeout=120,
            cwd=ALERTS_TEST.parent,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "SUCCESS" in out.stdout


def _exposed(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _referenced(text: str) -> set[str]:
    return set(re.findall(r"\btcwebhook_[a-z_]+\b", text))


@pytest.fixture(scope="module")
def monitored(test_ca: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("monitored")
    extra = (
        f'[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "{base / "outbox"}"\n'
        "[delivery]\npoll_interval = 0.1\n"
    )
    factory = ServerFactory(test_ca, base)  # type: ignore[arg-type]
    server = factory.start(extra=extra)
    body = {
        "eventName": "OrderIssuedByBuyer",
        "orderEvent": {"orderId": f"o-{uuid.uuid4()}", "lines": []},
        "meta": {"messageId": str(uuid.uuid4())},
    }
    with server.client() as client:
        r = client.post(server.url_orders, json=body, headers=server.bearer())
        assert r.status_code == 202, r.text
    try:
        yield server
    finally:
        factory.stop_all()


class TestExposed:
    """Every metric the dashboard and the alerts name is on /metrics (behind the credentials)."""

    def test_names(self, monitored: RunningServer) -> None:
        with monitored.client() as client:
            assert client.get(monitored.base_url + "/metrics").status_code == 401
            deadline = time.monotonic() + WAIT
            while True:
                text = client.get(monitored.base_url + "/metrics", headers=monitored.bearer()).text
                settled = 'tcwebhook_sink_backlog{sink="erp"} 0.0' in text  # gauges refresh at most every 2 s
                if ('_count{sink="erp"} 1.0' in text and settled) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert 'tcwebhook_delivery_latency_seconds_count{sink="erp"} 1.0' in text
        assert "tcwebhook_store_up 1.0" in text
        assert 'tcwebhook_sink_backlog{sink="erp"} 0.0' in text
        exposed = _exposed(text)
        dashboard = DASHBOARD.read_text()
        json.loads(dashboard)
        wanted = _referenced(dashboard) | _referenced(ALERTS.read_text())
        assert wanted - exposed == set()
        assert {"tcwebhook_certificate_expiry_timestamp_seconds", "tcwebhook_sink_dead_letters",
                "tcwebhook_sink_oldest_pending_age_seconds"} <= exposed


def _prometheus_port(log: Path, proc: subprocess.Popen[bytes]) -> int:
    """The port Prometheus got for --web.listen-address=127.0.0.1:0, from its "Listening on" line."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r'msg="Listening on" address=127\.0\.0\.1:(\d+)', log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        time.sleep(0.1)
    proc.kill()
    proc.wait(10)
    raise AssertionError(log.read_text(errors="replace")[-3000:])


@needs_prometheus
class TestPrometheusScrapes:
    """Debian's Prometheus scrapes /metrics over TLS with a bearer token and evaluates the rules."""

    def test_scrape(self, monitored: RunningServer, tmp_path: Path) -> None:
        shutil.copy(ALERTS, tmp_path / "alerts.yml")
        target = f"localhost:{monitored.port}"
        tls = f"    tls_config:\n      ca_file: {monitored.ca_path}\n"
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "rule_files:\n  - alerts.yml\n"
            "scrape_configs:\n"
            f"  - job_name: tcwebhook\n    scheme: https\n{tls}"
            f"    authorization:\n      type: Bearer\n      credentials: {TOKEN}\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
            f"  - job_name: without-credentials\n    scheme: https\n{tls}"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        log = (tmp_path / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [
                PROMETHEUS or "",
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                "--web.listen-address=127.0.0.1:0",  # the port it binds is read from its log
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        api = f"http://127.0.0.1:{_prometheus_port(tmp_path / 'prometheus.log', proc)}/api/v1"

        def query(expr: str) -> list[dict[str, Any]]:
            try:
                r = httpx.get(api + "/query", params={"query": expr}, timeout=5)
            except httpx.HTTPError:
                return []
            return list(r.json()["data"]["result"]) if r.status_code == 200 else []

        try:
            deadline = time.monotonic() + WAIT
            wanted = {
                'up{job="tcwebhook"} == 1',
                "tcwebhook_store_up == 1",
                'tcwebhook_delivery_latency_seconds_count{sink="erp"} >= 1',
                "tcwebhook_certificate_expiry_timestamp_seconds > time()",
                'up{job="without-credentials"} == 0',
            }
            while wanted and time.monotonic() < deadline:
                wanted = {expr for expr in wanted if not query(expr)}
                time.sleep(0.5)
            assert not wanted, (tmp_path / "prometheus.log").read_text()[-3000:]
            targets = httpx.get(api + "/targets", timeout=5).json()["data"]["activeTargets"]
            refused = next(t for t in targets if t["labels"]["job"] == "without-credentials")
            assert "401" in refused["lastError"]
            rules = httpx.get(api + "/rules", timeout=5).json()["data"]["groups"]
            loaded = {r["name"]: r["health"] for g in rules for r in g["rules"]}
            shipped = set(re.findall(r"^\s*- alert: (\w+)", ALERTS.read_text(), re.MULTILINE))
            assert set(loaded) == shipped and set(loaded.values()) <= {"ok", "unknown"}
        finally:
            proc.terminate()
            proc.wait(20)
            log.close()
