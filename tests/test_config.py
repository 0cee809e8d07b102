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
