"""Console sessions live in the store: every process on it shares them, across restarts."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tcwebhook.config import StoreSettings
from tcwebhook.console.app import ConsoleHooks, build_app
from tcwebhook.inbox.base import Inbox
from tcwebhook.inbox.postgres import PostgresInbox
from tcwebhook.inbox.sqlite import SqliteInbox

from .conftest import BASE, OPERATOR, console_settings, csrf_of, login

pytestmark = pytest.mark.anyio
Opener = Callable[[], Inbox]


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    if request.param == "sqlite":
        return lambda: SqliteInbox(tmp_path / "inbox.db", StoreSettings(), sinks=("erp",))
    url: str = request.getfixturevalue("pg_url")
    return lambda: PostgresInbox(url, StoreSettings(), sinks=("erp",))


class Process:
    """One console process: its own store connection and app, as a second `serve` would have."""

    def __init__(self, inbox: Inbox, tmp_path: Path, **console: object) -> None:
        self.inbox = inbox
        expiry = datetime.now(UTC) + timedelta(days=40)
        app = build_app(console_settings(tmp_path, **console), inbox, ConsoleHooks(certificate_expiry=lambda: expiry))
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 50000)),  # type: ignore[arg-type]
            base_url=BASE, follow_redirects=False,
        )

    async def close(self) -> None:
        await self.client.aclose()
        await self.inbox.close()


@pytest.fixture
async def start(opener: Opener, tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    started: list[Process] = []

    async def make(**console: object) -> Process:
        inbox = opener()
        await inbox.open()
        process = Process(inbox, tmp_path, **console)
        started.append(process)
        return process

    yield make
    for process in started:
        await process.close()


async def test_a_sign_in_on_one_process_works_on_another(start: Callable[..., object]) -> None:
    a, b = await start(), await start()  # type: ignore[misc]
    assert (await login(a.client, *OPERATOR)).status_code == 303
    cookie = a.client.cookies.get("tcwebhook_session")
    assert cookie
    # The store keeps the token's SHA-256 only.
    assert await a.inbox.get_session(cookie) is None
    assert await a.inbox.get_session(hashlib.sha256(cookie.encode()).hexdigest()) is not None
    b.client.cookies.set("tcwebhook_session", cookie, domain="console.test")
    page = await b.client.get("/events")
    assert page.status_code == 200 and OPERATOR[0] in page.text

    # Signed out on b: a refuses the cookie too.
    assert (await b.client.post("/logout", data={"csrf_token": csrf_of(page.text)})).status_code == 303
    again = await a.client.get("/events")
    assert again.status_code == 303 and again.headers["location"].startswith("/login")


async def test_a_restart_signs_no_one_out(start: Callable[..., object]) -> None:
    first = await start()  # type: ignore[misc]
    assert (await login(first.client, *OPERATOR)).status_code == 303
    cookie = first.client.cookies.get("tcwebhook_session")
    await first.close()
    restarted = await start()  # type: ignore[misc]
    restarted.client.cookies.set("tcwebhook_session", cookie, domain="console.test")
    page = await restarted.client.get("/")
    assert page.status_code == 200 and OPERATOR[0] in page.text


async def test_idle_expiry_holds_on_every_process(start: Callable[..., object]) -> None:
    a = await start(session_idle_timeout=1.0)  # type: ignore[misc]
    b = await start(session_idle_timeout=1.0)  # type: ignore[misc]
    assert (await login(a.client, *OPERATOR)).status_code == 303
    cookie = a.client.cookies.get("tcwebhook_session")
    await asyncio.sleep(1.5)
    b.client.cookies.set("tcwebhook_session", cookie, domain="console.test")
    page = await b.client.get("/events")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
