"""Fixtures: one fake Tradecloud API (HTTPS on loopback) per session, reset for every test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from tcwebhook.backoff import Backoff
from tcwebhook.config import TradecloudSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox.base import StoredEvent

from .fake_api import PASSWORD, USERNAME, FakeServer, FakeTradecloud

FAST = Backoff(initial=0.01, multiplier=2.0, cap=0.05, jitter=0.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServer]:
    server = FakeServer(tmp_path_factory.mktemp("fake-tradecloud"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_api(fake_server: FakeServer) -> FakeTradecloud:
    fake_server.fake.reset()
    return fake_server.fake


@pytest.fixture
def tc_settings(fake_server: FakeServer, fake_api: FakeTradecloud) -> TradecloudSettings:
    return TradecloudSettings(
        api_base=fake_server.api_base,
        username=USERNAME,
        password=SecretStr(PASSWORD),
        ca_bundle=fake_server.ca_path,
        timeout=2.0,
        max_retries=3,
    )


@pytest.fixture
def ca_path(fake_server: FakeServer) -> Path:
    return fake_server.ca_path


def make_event(
    kind: EventKind,
    body: dict[str, Any] | bytes,
    *,
    seq: int = 1,
    event_name: str = "Test",
    received_at: datetime | None = None,
    content_type: str = "application/json",
    order_id: str | None = None,
    shipment_id: str | None = None,
) -> StoredEvent:
    """A stored event as the inbox would hand it to the dispatcher."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return StoredEvent(
        seq=seq,
        event_id=f"evt-{seq:04d}",
        received_at=received_at or datetime.now(UTC),
        kind=kind,
        event_name=event_name,
        dedupe_key=f"sha256:{seq}",
        content_type=content_type,
        body=raw,
        key=None,
        order_id=order_id,
        shipment_id=shipment_id,
        purchase_order_number=None,
        shipment_number=None,
        message_id=None,
        last_updated_at=None,
        headers={},
        status="pending",
    )
