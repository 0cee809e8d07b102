"""`tcwebhook health` against a real `serve`: 200 over TLS with the configured certificate pinned."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import trustme
from tests.support.servers import CLI, ServerFactory, refused_port

pytestmark = pytest.mark.slow  # a server and three CLI processes: about half a minute on a busy machine


def _health(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "health", "--config", str(config)], capture_output=True, text=True, timeout=60,
                          check=False)


def _with_port(config: Path, port: int, target: Path) -> Path:
    text = config.read_text()
    assert "port = 0\n" in text
    target.write_text(text.replace("port = 0\n", f"port = {port}\n", 1))
    return target


def test_healthy_unhealthy(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory.start()
    assert server.config_path is not None
    config = _with_port(server.config_path, server.port, tmp_path / "health.toml")
    result = _health(config)
    assert result.returncode == 0 and result.stdout.strip() == "healthy", result.stderr

    # The check trusts exactly the configured certificate: another one (same names, another CA)
    # does not pass, although the server is up.
    other = trustme.CA().issue_cert("localhost", "127.0.0.1")
    other.cert_chain_pems[0].write_to_path(str(tmp_path / "other.pem"))
    pinned = config.read_text().replace(str(server.config_path.parent / "cert.pem"), str(tmp_path / "other.pem"))
    (tmp_path / "other.toml").write_text(pinned)
    result = _health(tmp_path / "other.toml")
    assert result.returncode == 1 and "did not answer over TLS" in result.stderr

    with refused_port() as port:
        result = _health(_with_port(server.config_path, port, tmp_path / "refused.toml"))
    assert result.returncode == 1 and result.stderr.startswith("unhealthy:")
