"""Out of file descriptors: accepting pauses instead of spinning; the open-file limit is checked at start-up."""

from __future__ import annotations

import resource
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import pytest
from tests.reliability.stalls import measured
from tests.support.servers import CLI, ServerFactory, logged_port

pytestmark = pytest.mark.reliability


def _limits(soft: int, hard: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class TestExhaustion:
    """EMFILE while clients keep connecting: one log line, a counter, little CPU, and recovery."""

    def test_accept_pauses(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("emfile", env={"TCWEBHOOK_SERVER__TLS_HANDSHAKE_TIMEOUT": "30"})
        proc = psutil.Process(server.proc.pid)
        clients: list[socket.socket] = []
        try:
            with measured("EMFILE for 3 s", server.base_url, server.ca_path, server.proc.pid) as cost:
                hard = proc.rlimit(psutil.RLIMIT_NOFILE)[1]
                proc.rlimit(psutil.RLIMIT_NOFILE, (proc.num_fds() + 16, hard))
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline and len(clients) < 200:
                    clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
                    time.sleep(0.005)
                time.sleep(max(0.0, deadline - time.monotonic()))
            proc.rlimit(psutil.RLIMIT_NOFILE, (hard, hard))
        finally:
            for sock in clients:
                sock.close()
        logs = server.logs()
        paused = logs.count('"accept_paused"')
        print(f"EMFILE: {paused} accept_paused line(s), {logs.count('accept_failed')} accept_failed line(s)")
        assert paused == 1, logs[-2000:]
        assert cost.cpu_s < 1.5
        deadline = time.monotonic() + 10
        with server.client() as client:
            while True:  # the waiting clients are served once descriptors are free again
                try:
                    metrics = client.get(server.base_url + "/metrics", headers=server.bearer())
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
        assert metrics.status_code == 200
        counted = [line for line in metrics.text.splitlines() if line.startswith("tcwebhook_accept_paused_total")]
        assert counted and float(counted[0].split()[-1]) >= 1, counted
        assert '"accept_resumed"' in server.logs()


class TestOpenFileLimit:
    """`serve` raises the soft limit to the hard one, and refuses a hard limit below what it needs."""

    def _serve(
        self, server_factory: ServerFactory, name: str, soft: int, hard: int
    ) -> tuple[subprocess.Popen[bytes], Path]:
        directory = server_factory.base / name
        config, _ = server_factory.write_config(directory)
        log = directory / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*CLI, "serve", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT, cwd=directory,
                preexec_fn=lambda: _limits(soft, hard),
            )
        return proc, log

    def test_hard_limit_too_low(self, server_factory: ServerFactory) -> None:
        proc, log = self._serve(server_factory, "low", 256, 512)
        assert proc.wait(30) == 3
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        assert len(lines) == 1 and "RLIMIT_NOFILE" in lines[0] and "512" in lines[0], lines

    def test_soft_limit_raised(self, server_factory: ServerFactory) -> None:
        proc, log = self._serve(server_factory, "raised", 256, 4096)
        try:
            logged_port(log, "listening", proc)
            soft = psutil.Process(proc.pid).rlimit(psutil.RLIMIT_NOFILE)[0]
            assert soft == 4096
        finally:
            proc.terminate()
            proc.wait(20)
