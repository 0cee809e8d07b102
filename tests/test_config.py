from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tcwebhook.config import load_settings
from tcwebhook.errors import StartupError


class TestLoadSettings:
    """TOML file, environment overrides and validation into one immutable object."""

    def test_defaults(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        s = load_settings()
        assert s.server.port == 8443
        assert s.routes.orders == "/tradecloud/orders"
        assert s.routes.shipments == "/tradecloud/shipments"
        assert s.store_url == f"sqlite:///{Path('data') / 'inbox.db'}"

    def test_toml_and_env(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            '[server]\nport = 9000\n[auth]\nbearer_tokens = ["from-file-0123456789"]\n'
            '[[auth.basic]]\nusername = "u"\npassword = "p-secret-0123456789"\n'
        )
        monkeypatch.setenv("TCWEBHOOK_SERVER__PORT", "9100")
        monkeypatch.setenv("TCWEBHOOK_ROUTES__ORDERS", "/hooks/orders")
        s = load_settings(cfg)
        assert s.server.port == 9100
        assert s.routes.orders == "/hooks/orders"
        assert s.auth.bearer_tokens[0].get_secret_value() == "from-file-0123456789"
        assert "p-secret-0123456789" not in repr(s) and "from-file-0123456789" not in repr(s)

    def test_env_list_as_json(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("TCWEBHOOK_AUTH__BEARER_TOKENS", '["a-token-1-0123456789", "a-token-2-0123456789"]')
        assert len(load_settings().auth.bearer_tokens) == 2

    def test_immutable(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        s = load_settings()
        with pytest.raises(ValidationError, match="frozen"):
            s.server.port = 1  # type: ignore[misc]
        with pytest.raises(ValidationError, match="frozen"):
            s.data_dir = tmp_path  # type: ignore[misc]
        assert s.server.port == 8443

    @pytest.mark.parametrize(
        ("text", "needle"),
        [
            ("[server]\nport = 'x'\n", "server.port"),
            ("[server]\nprot = 1\n", "server.prot"),
            ("[[auth.basic]]\nusername = 'a:b'\npassword = 'x'\n", "cannot contain ':'"),
            ("[routes]\norders = 'x'\n", "must start with '/'"),
            ("[[sinks]]\nname = 'a'\ntype = 'http'\n", "sinks.0: sink 'a' of type 'http' needs the key 'url'"),
            ("[[sinks]]\nname = 'a'\ntype = 'files'\ndirectory = 'x'\nurl = 'https://x'\n", "has no key 'url'"),
            ("[[sinks]]\nname = 'a'\ntype = 'python'\ncallable = ''\n", "needs the key 'callable'"),
            ("[[sinks]]\nname = 'a'\n", "a sink needs type = 'python', 'http', 'files', 'sftp', 'amqp' or 'sql'"),
            ("[[sinks]]\nname = 'a'\ntype = 'ftp'\n", "a sink needs type ="),
            ("[[sinks]]\nname = 'a'\ntype = 'http'\nurl = 'ftp://x'\n", "url must start with http://"),
            ("not toml [", "not valid TOML"),
        ],
    )
    def test_invalid_is_one_sentence(self, tmp_path: Path, text: str, needle: str) -> None:
        cfg = tmp_path / "c.toml"
        cfg.write_text(text)
        with pytest.raises(StartupError) as info:
            load_settings(cfg)
        assert needle in str(info.value)
        assert "\n" not in str(info.value)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(StartupError, match="does not exist"):
            load_settings(tmp_path / "nope.toml")


class TestRelativePaths:
    """Every Path-typed key in the file is relative to the file's folder; environment paths to the cwd."""

    def test_every_path_key_follows_the_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
        site.mkdir()
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        cfg = site / "tcwebhook.toml"
        cfg.write_text(
            '[tls]\ncertfile = "tls/cert.pem"\nkeyfile = "/etc/abs/key.pem"\ntrust_store = "~/ca.pem"\n'
            '[console]\ncertfile = "c.pem"\nkeyfile = "k.pem"\n'
            '[[sinks]]\nname = "out"\ntype = "files"\ndirectory = "outbox"\n'
            '[[sinks]]\nname = "ftp"\ntype = "sftp"\nhost = "h"\nusername = "u"\n'
            'private_key = "keys/id_ed25519"\nknown_hosts = "keys/known_hosts"\n'
        )
        s = load_settings(cfg)
        assert s.data_dir == site / "data"
        assert s.store_url == f"sqlite:///{site / 'data' / 'inbox.db'}"
        assert s.tls.certfile == site / "tls" / "cert.pem"
        assert s.tls.keyfile == Path("/etc/abs/key.pem")
        assert s.tls.trust_store == Path("~/ca.pem").expanduser()
        assert (s.console.certfile, s.console.keyfile) == (site / "c.pem", site / "k.pem")
        files, sftp = s.sinks
        assert getattr(files, "directory") == site / "outbox"  # noqa: B009 - a union member
        assert getattr(sftp, "known_hosts") == site / "keys" / "known_hosts"  # noqa: B009
        assert getattr(sftp, "private_key") == site / "keys" / "id_ed25519"  # noqa: B009

    def test_environment_paths_follow_the_working_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cfg = tmp_path / "site" / "c.toml"
        cfg.parent.mkdir()
        cfg.write_text('data_dir = "state"\n[store]\nurl = "sqlite:///db/x.db"\n')
        s = load_settings(cfg)
        assert s.store_url == f"sqlite:///{tmp_path / 'site' / 'db' / 'x.db'}"
        monkeypatch.setenv("TCWEBHOOK_DATA_DIR", "here")
        assert load_settings(cfg).data_dir == Path("here")


class TestErrorsPeopleCanActOn:
    """Unknown keys name the closest known key and the line; environment values name their variable."""

    def test_nested_unknown_key(self, tmp_path: Path) -> None:
        cfg = tmp_path / "c.toml"
        cfg.write_text('[server]\nport = 1\n\n[auth.oauth]\ntenant_id = "t"\naudience = "a"\nisuer = "x"\n')
        with pytest.raises(StartupError, match=r"line 7: auth\.oauth\.isuer: unknown key \(did you mean `issuer`\?\)"):
            load_settings(cfg)

    def test_top_level_unknown_key(self, tmp_path: Path) -> None:
        cfg = tmp_path / "c.toml"
        cfg.write_text('datadir = "x"\n')
        with pytest.raises(StartupError, match=r"line 1: datadir: unknown key \(did you mean `data_dir`\?\)"):
            load_settings(cfg)

    def test_unknown_nested_variable(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("TCWEBHOOK_SERVER__PROT", "1")
        with pytest.raises(StartupError, match=r"environment variable TCWEBHOOK_SERVER__PROT.*did you mean `port`"):
            load_settings()

    def test_environment_warnings(self) -> None:
        from tcwebhook.config import environment_warnings

        env = {"TCWEBHOOK_SERVER__PORT": "1", "TCWEBHOOK_SINKS": "[]", "TCWEBHOOK_LOGGING_LEVEL": "x", "HOME": "/"}
        assert environment_warnings(env) == [
            "the environment variable TCWEBHOOK_LOGGING_LEVEL is not a tcwebhook setting "
            "(did you mean `TCWEBHOOK_LOGGING__LEVEL`?)"
        ]
