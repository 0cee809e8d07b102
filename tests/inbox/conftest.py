"""Fixtures for the inbox tests: a real SQLite file per test and event builders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tcwebhook.config import StoreSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox import NewEvent, SqliteInbox

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


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "inbox.db"


@pytest.fixture
async def inbox(db_path: Path) -> AsyncIterator[SqliteInbox]:
    box = SqliteInbox(db_path, StoreSettings(busy_timeout=0.3), sinks=("erp",))
    await box.open()
    yield box
    await box.close()
