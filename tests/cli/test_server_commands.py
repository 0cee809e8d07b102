"""`init`, `check-config` and `dev` as a new user runs them."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import tomllib
import uuid
from pathlib import Path

from tests.support.polling import eventually
from tests.support.servers import CLI, RunningServer, ServerFactory


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


class TestInit:
    """`init` writes a commented config with fresh secrets, readable only by its owner."""

    def test_writes_fresh_secrets(self, tmp_path: Path) -> None:
        a, b = tmp_path / "a.toml", tmp_path / "b.toml"
        assert cli("init", str(a)).returncode == 0
        assert cli("init", str(b)).returncode == 0
        ca, cb = tomllib.loads(a.read_text()), tomllib.loads(b.read_text())
        assert ca["auth"]["bearer_tokens"][0] != cb["auth"]["bearer_tokens"][0]
        assert len(ca["auth"]["bearer_tokens"][0]) >= 32
        assert ca["auth"]["basic"][0]["password"] != cb["auth"]["basic"][0]["password"]
        assert stat.S_IMODE(os.stat(a).st_mode) == 0o600
        assert "# " in a.read_text()

    def test_refuses_to_overwrite(self, tmp_path: Path) -> None:
        path = tmp_path / "c.toml"
        path.write_text("keep me")
        out = cli("init", str(path))
        assert out.returncode == 1
        assert path.read_text() == "keep me"

    def test_fresh_config_names_missing_certificate(self, tmp_path: Path) -> None:
        path = tmp_path / "c.toml"
        cli("init", str(path))
        out = cli("check-config", "--config", str(path))
        assert out.returncode == 3
        assert "fullchain.pem" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


class TestCheckConfig:
    """`check-config` runs the start-up checks of `serve` and reports the certificate."""

    def test_valid(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        config, _ = server_factory.write_config(tmp_path / "ok")
        out = cli("check-config", "--config", str(config))
        assert out.returncode == 0, out.stderr
        assert "OK" in out.stdout
        assert "localhost" in out.stdout

    def test_bad_sink_callable(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        config, _ = server_factory.write_config(
            tmp_path / "bad", extra='[[sinks]]\nname = "h"\ntype = "python"\ncallable = "no_such_module:handler"\n'
        )
        out = cli("check-config", "--config", str(config))
        assert out.returncode == 3
        assert "no_such_module" in out.stderr


class TestDev:
    """`tcwebhook dev` (the README's first command) serves HTTPS with its own CA and credentials."""

    def test_banner_commands_run_as_pasted(self, dev_server: RunningServer) -> None:
        text = dev_server.log_path.read_text()
        line = next(raw for raw in text.splitlines() if " send https://" in raw)
        argv = shlex.split(line)
        assert Path(argv[0]).name == "tcwebhook" and (Path(argv[0]).is_absolute() or "/" in argv[0])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                              cwd=dev_server.log_path.parent)
        assert done.returncode == 0, done.stdout + done.stderr

    def test_dev_accepts_and_delivers_to_outbox(self, dev_server: RunningServer) -> None:
        data = {
            "eventName": "OrderIssuedByBuyer",
            "orderEvent": {"orderId": f"dev-{uuid.uuid4()}", "lines": []},
            "meta": {"messageId": str(uuid.uuid4())},
        }
        with dev_server.client() as c:
            r = c.post(
                dev_server.url_orders,
                content=json.dumps(data),
                headers={**dev_server.bearer(), "content-type": "application/json"},
            )
            assert r.status_code == 202
            assert (
                c.post(
                    dev_server.url_orders,
                    content=json.dumps(data),
                    headers={**dev_server.basic_header(), "content-type": "application/json"},
                ).status_code
                == 200
            )
        event_id = r.json()["eventId"]
        outbox = dev_server.data_dir / "outbox"
        # The sink writes a hidden temp file and renames it into place: only the final name counts.
        files = eventually(lambda: list(outbox.glob(f"[!.]*{event_id}*")), 15, what="the delivered file")
        assert len(files) == 1
        assert json.loads(files[0].read_bytes()) == data

    def test_banner_prints_ca_credentials_and_command(self, dev_server: RunningServer) -> None:
        logs = dev_server.logs()
        assert str(dev_server.ca_path.resolve()) in logs
        assert dev_server.token in logs
        assert "curl --cacert" in logs
        assert "tcwebhook send" in logs
