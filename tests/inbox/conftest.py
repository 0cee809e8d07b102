"""Fixtures for the inbox tests: every store (a real SQLite file, a real PostgreSQL database)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tcwebhook.config import StoreSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox import Inbox, NewEvent, SqliteInbox
from tcwebhook.inbox.postgres import PostgresInbox
from tcwebhook.inbox.tx import Rule, Tx

BODY = b'{"eventName":"OrderIssuedByBuyer","orderEvent":{"orderId":"o-1"}}'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def order_event(i: int = 0, **overrides: Any) -> NewEvent:
    fields: dict[str, Any] = {
        "kind": EventKind.ORDER,
        "event_name": "OrderIssuedByBuyer",
        "dedupe_key": f"msg-{i}",
        "content_type": "application/json",
        "body": BODY + b" " * (i % 7),
        "key": f"order:o-{i % 5}",
        "order_id": f"o-{i % 5}",
        "purchase_order_number": f"PO-{i}",
        "message_id": f"msg-{i}",
        "last_updated_at": "2025-05-02T08:15:29.987Z",
        "headers": {"content-type": "application/json", "authorization": "[redacted]"},
    }
    fields.update(overrides)
    return NewEvent(**fields)


def shipment_event(i: int = 0, **overrides: Any) -> NewEvent:
    fields: dict[str, Any] = {
        "kind": EventKind.SHIPMENT,
        "event_name": "ShipmentUpdated",
        "dedupe_key": f"ship-msg-{i}",
        "content_type": "application/json",
        "body": b'{"shipment":{"id":"s-1"}}',
        "key": "shipment:s-1",
        "shipment_id": "s-1",
        "shipment_number": "SN-1",
        "message_id": f"ship-msg-{i}",
    }
    fields.update(overrides)
    return NewEvent(**fields)


def first_value(sql: str) -> Rule[Any]:
    """A rule answering the first value ``sql`` returns, to look at an engine's own connection."""

    async def rule(tx: Tx) -> Any:
        row = await tx.one(sql)
        return None if row is None else row[0]

    return rule


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "inbox.db"


@pytest.fixture
async def sqlite_inbox(db_path: Path) -> AsyncIterator[SqliteInbox]:
    box = SqliteInbox(db_path, StoreSettings(busy_timeout=0.3), sinks=("erp",))
    await box.open()
    yield box
    await box.close()


MakeInbox = Callable[..., Inbox]


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    """Where the store under test lives: a SQLite file, or a PostgreSQL database URL."""
    if request.param == "sqlite":
        return db_path
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def make_inbox(store_location: Path | str) -> MakeInbox:
    """Builds (not opens) an inbox of the store under test; one per "process"."""

    def make(
        sinks: tuple[str, ...] = (), *, hold_new: bool = False, settings: StoreSettings | None = None
    ) -> Inbox:
        chosen = settings or StoreSettings(busy_timeout=0.3)
        if isinstance(store_location, Path):
            return SqliteInbox(store_location, chosen, sinks=sinks, hold_new=hold_new)
        return PostgresInbox(store_location, chosen, sinks=sinks, hold_new=hold_new)

    return make


@pytest.fixture
async def inbox(make_inbox: MakeInbox) -> AsyncIterator[Inbox]:
    box = make_inbox(("erp",))
    await box.open()
    yield box
    await box.close()
