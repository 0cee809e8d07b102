"""open_inbox picks the store from the URL and passes the sinks and delivery mode on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcwebhook.config import FilesSinkSettings, Settings
from tcwebhook.errors import StartupError
from tcwebhook.inbox import SqliteInbox, open_inbox
from tcwebhook.inbox.postgres import PostgresInbox
from tcwebhook.inbox.sqlite import sqlite_path

from .conftest import order_event

pytestmark = pytest.mark.anyio


def _sink(name: str) -> FilesSinkSettings:
    return FilesSinkSettings(name=name, directory=Path("out"))


class TestOpenInbox:
    """The factory reads the store URL, the sinks and the delivery mode."""

    def test_default_url_lives_in_the_data_dir(self, tmp_path: Path) -> None:
        inbox = open_inbox(Settings(data_dir=tmp_path))
        assert isinstance(inbox, SqliteInbox)
        assert inbox.path == tmp_path / "inbox.db"

    def test_sinks_and_mode(self, tmp_path: Path) -> None:
        settings = Settings(
            data_dir=tmp_path, sinks=(_sink("erp"), _sink("archive")), delivery={"mode": "sync"}
        )
        inbox = open_inbox(settings)
        assert isinstance(inbox, SqliteInbox)
        assert inbox.sinks == ("erp", "archive")

    @pytest.mark.parametrize("url", ["postgresql://u:secret@db:5433/x?sslmode=require", "postgres://db/x"])
    def test_postgres_url_picks_postgres(self, url: str) -> None:
        inbox = open_inbox(Settings(store={"url": url}, sinks=(_sink("erp"),)))
        assert isinstance(inbox, PostgresInbox)
        assert inbox.sinks == ("erp",)

    def test_unknown_scheme(self) -> None:
        with pytest.raises(StartupError, match="scheme"):
            open_inbox(Settings(store={"url": "mysql://db/x"}))

    async def test_sync_mode_holds_new_deliveries(self, tmp_path: Path) -> None:
        inbox = open_inbox(Settings(data_dir=tmp_path, sinks=(_sink("erp"),), delivery={"mode": "sync"}))
        await inbox.open()
        try:
            result = await inbox.store(order_event(1))
            (delivery,) = await inbox.deliveries(result.event_id)
            assert delivery.next_attempt_at is None
        finally:
            await inbox.close()


class TestSqlitePath:
    """SQLite URLs follow the usual three/four-slash convention."""

    @pytest.mark.parametrize(
        ("url", "path"),
        [
            ("sqlite:///data/inbox.db", Path("data/inbox.db")),
            ("sqlite:////var/lib/tc/inbox.db", Path("/var/lib/tc/inbox.db")),
            ("plain/inbox.db", Path("plain/inbox.db")),
        ],
    )
    def test_paths(self, url: str, path: Path) -> None:
        assert sqlite_path(url) == path

    @pytest.mark.parametrize("url", ["sqlite://host/inbox.db", "sqlite:///:memory:", ":memory:", "sqlite:///"])
    def test_rejected(self, url: str) -> None:
        with pytest.raises(StartupError):
            sqlite_path(url)
