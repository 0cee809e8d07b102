"""Start-up with server-backed sinks: ``check-config``, ``serve`` and ``worker`` connect once.

A sink whose server is unreachable or lacks what deliveries need stops start-up with exit 3 and
one sentence naming the sink; a reachable one is shown by ``check-config``. The sinks' secrets
stay out of every line the server logs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.support.servers import CLI, ServerFactory
from tests.support.sink_servers import KEY_PASSPHRASE, MARIADB_PASSWORD, RABBIT_PASSWORD, MariaDb, RabbitNode, SshServer

from .amqp_consumer import unique


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False)


def sftp_toml(server: SshServer, remote_dir: Path, name: str = "drop") -> str:
    return (
        f'[[sinks]]\nname = "{name}"\ntype = "sftp"\nhost = "127.0.0.1"\nport = {server.port}\n'
        f'username = "{server.username}"\nprivate_key = "{server.client_key}"\npassphrase = "{KEY_PASSPHRASE}"\n'
        f'known_hosts = "{server.known_hosts}"\nremote_dir = "{remote_dir}"\n'
    )


def amqp_toml(node: RabbitNode, name: str = "broker", password: str = RABBIT_PASSWORD) -> str:
    return (
        f'[[sinks]]\nname = "{name}"\ntype = "amqp"\nurl = "{node.url(password)}"\n'
        f'exchange = "{unique("cfg")}"\ndeclare = true\n'
    )


def sql_toml(url: str, name: str = "staging", create: bool = True) -> str:
    return f'[[sinks]]\nname = "{name}"\ntype = "sql"\nurl = "{url}"\ncreate_table = {str(create).lower()}\n'


class TestCheckConfig:
    """Each sink's reachability is shown; the first unreachable one is refused in one sentence."""

    def test_reachable(
        self, server_factory: ServerFactory, tmp_path: Path, ssh_server: SshServer, rabbit_node: RabbitNode,
        mariadb: MariaDb,
    ) -> None:
        maria_url = mariadb.url(mariadb.create_database())
        extra = (
            sftp_toml(ssh_server, tmp_path) + amqp_toml(rabbit_node) + sql_toml(maria_url)
            + '[[sinks]]\nname = "folder"\ntype = "files"\n' + f'directory = "{tmp_path / "out"}"\n'
        )
        config, _ = server_factory.write_config(tmp_path / "ok", extra=extra)
        out = cli("check-config", "--config", str(config))
        assert out.returncode == 0, out.stderr
        lines = {line.split("(", 1)[0].strip(): line for line in out.stdout.splitlines() if "(" in line}
        # "sink <name> (<type> <target>): <what the connection found>"
        assert lines["sink drop"].endswith(
            f"): connected to {ssh_server.username}@127.0.0.1:{ssh_server.port}, {tmp_path} is a folder"
        )
        assert "(amqp amqp://tcwebhook:***@" in lines["sink broker"]
        assert "): connected to amqp://tcwebhook:***@" in lines["sink broker"]
        assert "(sql mariadb://tcwebhook_app:***@" in lines["sink staging"]
        assert lines["sink staging"].endswith("table tradecloud_events has the expected columns")
        assert lines["sink folder"].endswith("): not connected to before a delivery")
        for secret in (RABBIT_PASSWORD, MARIADB_PASSWORD, KEY_PASSPHRASE):
            assert secret not in out.stdout + out.stderr

    @pytest.mark.parametrize("broken", ["sftp", "amqp", "sql"])
    def test_unreachable_is_refused(
        self, broken: str, server_factory: ServerFactory, tmp_path: Path, ssh_server: SshServer,
        rabbit_node: RabbitNode,
    ) -> None:
        sinks = {
            "sftp": sftp_toml(ssh_server, tmp_path / "missing"),
            "amqp": amqp_toml(rabbit_node, password="not-the-password"),
            "sql": sql_toml(f"sqlite:///{tmp_path / 'staging.db'}", create=False),
        }
        expected = {
            "sftp": "Sink 'drop': remote_dir",
            "amqp": "Sink 'broker': amqp://tcwebhook:***@",
            "sql": "Sink 'staging': table tradecloud_events does not exist",
        }
        config, _ = server_factory.write_config(tmp_path / "bad", extra=sinks[broken])
        out = cli("check-config", "--config", str(config))
        assert out.returncode == 3, out.stdout
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith(f"tcwebhook: {expected[broken]}"), line
        assert "not-the-password" not in line


class TestServeAndWorker:
    """``serve`` and ``worker`` refuse a sink they cannot reach before taking any webhook."""

    def test_serve_refuses(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        server = server_factory.start(
            "serve", extra=sql_toml(f"sqlite:///{tmp_path / 'staging.db'}", create=False), wait=False
        )
        assert server.proc.wait(60) == 3
        assert "Sink 'staging': table tradecloud_events does not exist" in server.logs()
        assert server.port == 0  # never listened

    def test_worker_refuses(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        config, _ = server_factory.write_config(
            tmp_path / "worker", extra=sql_toml("postgresql://u:pg-secret-pw@127.0.0.1:9/db")
        )
        out = cli("worker", "--config", str(config))
        assert out.returncode == 3
        assert out.stderr.strip().splitlines()[-1].startswith("tcwebhook: Sink 'staging': ")
        assert "pg-secret-pw" not in out.stderr + out.stdout

    def test_secrets_not_logged(self, server_factory: ServerFactory, tmp_path: Path, rabbit_node: RabbitNode) -> None:
        # A wrong password: the broker's refusal is logged with the url, never the password.
        server = server_factory.start(
            "secret", extra=amqp_toml(rabbit_node, password="wrong-password-0123456789"), wait=False
        )
        assert server.proc.wait(60) == 3
        assert "ACCESS_REFUSED" in server.logs()
        assert "wrong-password-0123456789" not in server.logs()
