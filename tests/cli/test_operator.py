"""The operator's first hour: the installed ``tcwebhook`` binary, run from another directory."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from tests.support.servers import ServerFactory

from tcwebhook.cli.main import app

BINARY = Path(sys.executable).parent / "tcwebhook"
_SECTION = re.compile(r"\[\[?[a-z_.]+\]\]?")


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("TCWEBHOOK_")}
    return subprocess.run(
        [str(BINARY), *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
        env={**clean, "COLUMNS": "200", **(env or {})},
    )


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory with no tcwebhook.toml in it."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


def relative_config(factory: ServerFactory, directory: Path, extra: str = "") -> Path:
    """A valid config whose paths are all relative to its own folder."""
    config, _ = factory.write_config(directory, extra)
    config.write_text(config.read_text().replace(f"{directory}/", ""))
    assert str(directory) not in config.read_text()
    return config


class TestRelativePaths:
    """Paths in the file are relative to the file; read-only commands never create a store."""

    def test_check_config_from_another_directory(
        self, server_factory: ServerFactory, tmp_path: Path, elsewhere: Path
    ) -> None:
        config = relative_config(server_factory, tmp_path / "site")
        out = run("check-config", "--config", str(config), cwd=elsewhere)
        assert out.returncode == 0, out.stderr
        assert f"sqlite:///{tmp_path / 'site' / 'data' / 'inbox.db'}" in out.stdout
        assert not (elsewhere / "data").exists()

    def test_sink_directory_and_sqlite_url_relative_to_file(
        self, server_factory: ServerFactory, tmp_path: Path, elsewhere: Path
    ) -> None:
        extra = '[store]\nurl = "sqlite:///db/inbox.db"\n[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "out"\n'
        config = relative_config(server_factory, tmp_path / "site", extra)
        out = run("check-config", "--config", str(config), cwd=elsewhere)
        assert out.returncode == 0, out.stderr
        assert f"sqlite:///{tmp_path / 'site' / 'db' / 'inbox.db'}" in out.stdout
        assert f"files {tmp_path / 'site' / 'out'}" in out.stdout

    def test_read_only_commands_say_where_they_looked(self, tmp_path: Path, elsewhere: Path) -> None:
        config = tmp_path / "site" / "tcwebhook.toml"
        config.parent.mkdir()
        config.write_text('data_dir = "state"\n')
        read_only = (
            ["events", "list"], ["events", "dead"], ["quarantine", "list"], ["db", "status"], ["orders", "list"]
        )
        for args in read_only:
            out = run(*args, "--config", str(config), cwd=elsewhere)
            assert out.returncode == 1, (args, out.stderr)
            assert f"no inbox at {tmp_path / 'site' / 'state' / 'inbox.db'}" in out.stderr
            bare = run(*args, cwd=elsewhere)
            assert bare.returncode == 1, (args, bare.stderr)
            assert f"no tcwebhook.toml in {elsewhere}" in bare.stderr
        assert not (tmp_path / "site" / "state").exists()
        assert list(elsewhere.iterdir()) == []

    def test_serve_without_configuration(self, elsewhere: Path) -> None:
        out = run("serve", cwd=elsewhere)
        assert out.returncode == 3
        assert "no configuration found" in out.stderr and "run `tcwebhook init`" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        assert list(elsewhere.iterdir()) == []

    def test_init_config_works_from_any_directory(self, tmp_path: Path, elsewhere: Path) -> None:
        site = tmp_path / "site"
        assert run("init", str(site / "tcwebhook.toml"), cwd=elsewhere).returncode == 0
        out = run("check-config", "--config", str(site / "tcwebhook.toml"), cwd=elsewhere)
        assert out.returncode == 3
        assert "/etc/tcwebhook/fullchain.pem" in out.stderr
        stored = run("events", "list", "--config", str(site / "tcwebhook.toml"), cwd=elsewhere)
        assert f"no inbox at {site / 'data' / 'inbox.db'}" in stored.stderr


class TestConfigurationErrors:
    """Every configuration problem exits 3 with a sentence naming where it is and what was meant."""

    def test_unknown_key_gets_closest_and_line(self, server_factory: ServerFactory, tmp_path: Path,
                                                elsewhere: Path) -> None:
        config = relative_config(server_factory, tmp_path / "site")
        lines = config.read_text().splitlines()
        at = lines.index("reload_interval = 0.5")
        lines[at] = "reload_intervall = 0.5"
        config.write_text("\n".join(lines) + "\n")
        out = run("check-config", "--config", str(config), cwd=elsewhere)
        assert out.returncode == 3
        assert f"line {at + 1}" in out.stderr
        assert "did you mean `reload_interval`?" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1

    def test_unknown_sink_key(self, server_factory: ServerFactory, tmp_path: Path, elsewhere: Path) -> None:
        extra = '[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "out"\ngroup_readible = true\n'
        config = relative_config(server_factory, tmp_path / "site", extra)
        at = config.read_text().splitlines().index("group_readible = true") + 1
        out = run("check-config", "--config", str(config), cwd=elsewhere)
        assert out.returncode == 3
        assert f"line {at}" in out.stderr and "did you mean `group_readable`?" in out.stderr

    def test_value_from_environment_is_named(self, server_factory: ServerFactory, tmp_path: Path,
                                             elsewhere: Path) -> None:
        config = relative_config(server_factory, tmp_path / "site")
        out = run("check-config", "--config", str(config), cwd=elsewhere, env={"TCWEBHOOK_SERVER__PORT": "eighty"})
        assert out.returncode == 3
        assert "TCWEBHOOK_SERVER__PORT" in out.stderr
        assert str(config) not in out.stderr

    def test_unknown_environment_variable_is_a_warning(self, server_factory: ServerFactory, tmp_path: Path,
                                                       elsewhere: Path) -> None:
        config = relative_config(server_factory, tmp_path / "site")
        out = run("check-config", "--config", str(config), cwd=elsewhere, env={"TCWEBHOOK_SERVR__PORT": "9443"})
        assert out.returncode == 0, out.stderr
        assert "TCWEBHOOK_SERVR__PORT is not a tcwebhook setting" in out.stderr
        assert "did you mean `TCWEBHOOK_SERVER__PORT`?" in out.stderr

    def test_unreadable_config_exits_3(self, tmp_path: Path, elsewhere: Path) -> None:
        for bad in (tmp_path, tmp_path / "missing.toml"):
            out = run("check-config", "--config", str(bad), cwd=elsewhere)
            assert out.returncode == 3, out.stderr
            assert len(out.stderr.strip().splitlines()) == 1

    def test_version_help_and_usage(self, elsewhere: Path) -> None:
        version = run("--version", cwd=elsewhere)
        assert version.returncode == 0 and re.fullmatch(r"tcwebhook \d+\.\d+\.\d+\S*\n", version.stdout)
        assert run("-h", cwd=elsewhere).returncode == 0
        assert run("events", "list", "-h", cwd=elsewhere).returncode == 0
        assert run("events", "list", "--no-such-flag", cwd=elsewhere).returncode == 2
        assert run("no-such-command", cwd=elsewhere).returncode == 2


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


class TestTextKeepsSections:
    """Rich markup never eats a [section] name from help texts and messages."""

    def test_every_help_shows_its_sections(self, elsewhere: Path) -> None:
        checked = 0
        for path, command in _commands(typer.main.get_command(app)):
            texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
            if hasattr(command, "commands"):
                texts += [sub.help or "" for sub in command.commands.values()]
            wanted = {s for text in texts for s in _SECTION.findall(text)}
            if not wanted:
                continue
            out = run(*path, "--help", cwd=elsewhere)
            assert out.returncode == 0, (path, out.stderr)
            for section in wanted:
                assert section in out.stdout, (path, section, out.stdout)
            checked += 1
        assert checked >= 5

    def test_messages_show_their_sections(self, server_factory: ServerFactory, tmp_path: Path,
                                          elsewhere: Path) -> None:
        assert "[tls] certfile" in run("init", str(tmp_path / "a.toml"), cwd=elsewhere).stdout
        config = relative_config(server_factory, tmp_path / "site")
        renew = run("certificate", "renew", "--config", str(config), cwd=elsewhere)
        assert renew.returncode == 3 and "[tls] acme" in renew.stderr
        none = tmp_path / "none.toml"
        none.write_text("[server]\nport = 0\n")
        status = run("certificate", "status", "--config", str(none), cwd=elsewhere)
        assert status.returncode == 3 and "[tls] certfile" in status.stderr
        check = run("check-config", "--config", str(config), cwd=elsewhere)
        assert "no [[sinks]] are configured" in check.stdout


class TestCheckConfig:
    """check-config finds what serve would find, but the bind of the port."""

    def test_no_sinks_and_port_in_use_are_warnings(self, server_factory: ServerFactory, tmp_path: Path,
                                                   elsewhere: Path) -> None:
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            held.listen()
            port = held.getsockname()[1]
            config = relative_config(server_factory, tmp_path / "site")
            config.write_text(config.read_text().replace("port = 0", f"port = {port}"))
            out = run("check-config", "--config", str(config), cwd=elsewhere)
        assert out.returncode == 0, out.stderr
        assert f"warning [server] port 127.0.0.1:{port} is in use by another program" in out.stdout
        assert "events will be stored and never delivered" in out.stdout

    def test_port_held_by_the_running_service(self, server_factory: ServerFactory, tmp_path: Path,
                                              elsewhere: Path) -> None:
        server = server_factory.start("running")
        assert server.config_path is not None
        config = server.config_path
        config.write_text(config.read_text().replace("port = 0", f"port = {server.port}"))
        out = run("check-config", "--config", str(config), cwd=elsewhere)
        assert out.returncode == 0, out.stderr
        assert f"[server] port 127.0.0.1:{server.port} is held by a running tcwebhook" in out.stdout

    def test_unreachable_http_sink_is_a_warning(self, server_factory: ServerFactory, tmp_path: Path,
                                                elsewhere: Path) -> None:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        extra = f'[[sinks]]\nname = "mw"\ntype = "http"\nurl = "http://127.0.0.1:{port}/in"\n'
        out = run("check-config", "--config", str(relative_config(server_factory, tmp_path / "s", extra)),
                  cwd=elsewhere)
        assert out.returncode == 0, out.stderr
        assert f"sink 'mw': http://127.0.0.1:{port}/in is not reachable now" in out.stdout

    def test_data_dir_that_cannot_hold_files(self, server_factory: ServerFactory, tmp_path: Path,
                                             elsewhere: Path) -> None:
        config = relative_config(server_factory, tmp_path / "site")
        # /proc exists, but nobody (root included) can create a file in it.
        config.write_text(config.read_text().replace('data_dir = "data"', 'data_dir = "/proc"'))
        out = run("check-config", "--config", str(config), cwd=elsewhere)
        assert out.returncode == 3
        assert "The data directory (data_dir) /proc exists but user" in out.stderr
        assert "cannot create files in it" in out.stderr

    def test_data_dir_under_a_file(self, server_factory: ServerFactory, tmp_path: Path, elsewhere: Path) -> None:
        config = relative_config(server_factory, tmp_path / "site")
        (tmp_path / "site" / "plain").write_text("not a folder")
        config.write_text(config.read_text().replace('data_dir = "data"', 'data_dir = "plain/data"'))
        out = run("check-config", "--config", str(config), cwd=elsewhere)
        assert out.returncode == 3
        assert "is a file, not a folder" in out.stderr

    def test_templates_relative_and_compiled(self, server_factory: ServerFactory, tmp_path: Path,
                                             elsewhere: Path) -> None:
        extra = ('[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "out"\nformat = "template"\n'
                 'template = "templates/order.txt"\n')
        config = relative_config(server_factory, tmp_path / "site", extra)
        (tmp_path / "site" / "templates").mkdir()
        template = tmp_path / "site" / "templates" / "order.txt"
        template.write_text("{{ event.event_name }}\n")
        out = run("check-config", "--config", str(config), cwd=elsewhere)
        assert out.returncode == 0, out.stderr
        template.write_text("{% for x in %}\n")
        broken = run("check-config", "--config", str(config), cwd=elsewhere)
        assert broken.returncode == 3
        assert str(template) in broken.stderr
        assert len(broken.stderr.strip().splitlines()) == 1

    def test_postgres_store_connected(self, server_factory: ServerFactory, tmp_path: Path, elsewhere: Path,
                                      pg_url: str) -> None:
        config = relative_config(server_factory, tmp_path / "site", f'[store]\nurl = "{pg_url}"\n')
        out = run("check-config", "--config", str(config), cwd=elsewhere)
        assert out.returncode == 0, out.stderr
        assert "no schema yet, serve creates it" in out.stdout
        password = pg_url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
        assert password and password not in out.stdout

    def test_postgres_store_down(self, server_factory: ServerFactory, tmp_path: Path, elsewhere: Path) -> None:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        url = f"postgresql://tcwebhook:s3cret-pw@127.0.0.1:{port}/tcwebhook"
        config = relative_config(server_factory, tmp_path / "site", f'[store]\nurl = "{url}"\n')
        out = run("check-config", "--config", str(config), cwd=elsewhere)
        assert out.returncode == 3
        assert "Cannot connect to the PostgreSQL store" in out.stderr
        assert "s3cret-pw" not in out.stderr


class TestCertificateStatus:
    """certificate status describes a configured certificate, not only an ACME one."""

    def test_configured_certificate(self, server_factory: ServerFactory, tmp_path: Path, elsewhere: Path) -> None:
        config = relative_config(server_factory, tmp_path / "site")
        out = run("certificate", "status", "--config", str(config), cwd=elsewhere)
        assert out.returncode == 0, out.stderr
        for field in ("issuer", "names", "not after", "days left", "chain ok"):
            assert field in out.stdout
        assert "localhost, 127.0.0.1" in out.stdout
        assert "verified against" in out.stdout

    def test_chain_failure_exits_1(self, server_factory: ServerFactory, tmp_path: Path, elsewhere: Path) -> None:
        config = relative_config(server_factory, tmp_path / "site")
        # Against the system roots, the test CA's certificate does not verify.
        config.write_text(config.read_text().replace('trust_store = "ca.pem"\n', ""))
        out = run("certificate", "status", "--config", str(config), "--json", cwd=elsewhere)
        assert out.returncode == 1
        assert '"chain_ok": false' in out.stdout
        assert '"days_left"' in out.stdout
