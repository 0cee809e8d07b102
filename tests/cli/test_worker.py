"""The `worker` command."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import typer
from tests.cli.conftest import event, invoke
from tests.support.polling import eventually
from tests.support.servers import logged_port

from tcwebhook.config import load_settings
from tcwebhook.inbox import open_inbox

BINARY = Path(sys.executable).parent / "tcwebhook"


class TestWorkerCommand:
    """worker refuses to start without sinks (exit 3, one sentence)."""

    def test_no_sinks(self, app: typer.Typer, tmp_path: Path) -> None:
        config = tmp_path / "empty.toml"
        config.write_text(f'data_dir = "{tmp_path}"\n')
        result = invoke(app, "worker", "-c", str(config))
        assert result.exit_code == 3
        assert "nothing to deliver" in result.output


class TestWorkerMetrics:
    """worker serves /metrics and /healthz on [worker] metrics_port, with the delivery metrics."""

    def test_delivery_latency_where_the_worker_delivers(self, tmp_path: Path) -> None:
        config = tmp_path / "tcwebhook.toml"
        config.write_text(
            'data_dir = "data"\n[worker]\nmetrics_port = 0\n[delivery]\npoll_interval = 0.1\n'
            '[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "outbox"\n'
        )
        seeded = _store_one(config)
        log_path = tmp_path / "worker.log"
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        with log_path.open("wb") as out:
            proc = subprocess.Popen([str(BINARY), "worker", "--config", str(config)], stdout=out,
                                    stderr=subprocess.STDOUT, cwd=elsewhere)
        try:
            port = logged_port(log_path, "metrics_listening", proc)
            eventually(lambda: list((tmp_path / "outbox").glob("*")), 30, interval=0.1,
                       what=f"a delivered file (log: {log_path})")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                metrics = client.get("/metrics")
                assert metrics.status_code == 200
                assert 'tcwebhook_delivery_latency_seconds_count{sink="erp"} 1.0' in metrics.text
                assert "tcwebhook_store_up 1.0" in metrics.text
                assert 'tcwebhook_sink_backlog{sink="erp"} 0.0' in metrics.text
                health = client.get("/healthz")
                assert health.status_code == 200 and health.json()["store"] == "up"
                assert client.get("/other").status_code == 404
                assert client.post("/metrics").status_code == 405
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        assert proc.returncode == 0, log_path.read_text()
        assert seeded


def _store_one(config: Path) -> str:
    async def main() -> str:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            return (await inbox.store(event(1))).event_id
        finally:
            await inbox.close()

    return asyncio.run(main())
