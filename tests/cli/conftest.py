"""The operator commands through Typer's runner against each real store (a SQLite file, a PostgreSQL
database): app, config, seeded store."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import typer
from typer.testing import CliRunner

from tcwebhook.cli import events, quarantine, worker
from tcwebhook.config import load_settings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox import AttemptOutcome, AttemptResult, DeliveryStatus, NewEvent, open_inbox

ORDER = json.dumps({
    "eventName": "OrderIssuedByBuyer",
    "orderEvent": {"orderId": "o-9", "buyerOrder": {"purchaseOrderNumber": "PO-9"}},
    "meta": {"messageId": "0f1e2d3c-4b5a-4697-8877-665544332299"},
}).encode()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # The commands configure structlog and the root logger; leave both as found.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    for module in (events, quarantine, worker):
        module.register(app)
    return app


@pytest.fixture(params=["sqlite", "postgres"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A config on each store: the default SQLite file, then a PostgreSQL database."""
    store = ""
    if request.param == "postgres":
        store = f'[store]\nurl = "{request.getfixturevalue("pg_url")}"\n\n'
    path = tmp_path / "tcwebhook.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n\n'
        f"{store}"
        "[[sinks]]\n"
        'name = "erp"\n'
        'type = "files"\n'
        f'directory = "{tmp_path / "outbox"}"\n'
    )
    return path


def invoke(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def run_json(app: typer.Typer, *args: str) -> Any:
    result = invoke(app, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def event(i: int, **overrides: Any) -> NewEvent:
    fields: dict[str, Any] = {
        "kind": EventKind.ORDER,
        "event_name": "OrderIssuedByBuyer",
        "dedupe_key": f"m-{i}",
        "content_type": "application/json",
        "body": b'{"eventName": "OrderIssuedByBuyer", "n": %d}' % i,
        "key": f"order:o-{i}",
        "order_id": f"o-{i}",
        "purchase_order_number": f"PO-{i}",
        "headers": {"user-agent": "tradecloud"},
    }
    fields.update(overrides)
    return NewEvent(**fields)


def seed(config: Path) -> dict[str, str]:
    """Three events (delivered, dead, pending) and one quarantined body; returns their ids."""

    async def main() -> dict[str, str]:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            ids = {name: (await inbox.store(event(i))).event_id for i, name in enumerate(("ok", "dead", "new"))}
            ids["shipment"] = (
                await inbox.store(
                    event(9, kind=EventKind.SHIPMENT, event_name="ShipmentIssuedBySupplier", key="shipment:s-1",
                          order_id=None, shipment_id="s-1", shipment_number="SN-1", purchase_order_number=None,
                          body=b"<shipment/>", content_type="application/xml")
                )
            ).event_id
            claims = await inbox.claim_due(owner="t", sinks=["erp"], limit=2, lease=60, stale_kinds=frozenset())
            for claim in claims:
                if claim.event.event_id == ids["ok"]:
                    result = AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, 0.0, 0.01)
                else:
                    result = AttemptResult(
                        DeliveryStatus.DEAD, AttemptOutcome.PERMANENT, 0.0, 0.02, "PermanentError: unknown item"
                    )
                await inbox.finish(claim, result)
            ids["quarantined"] = await inbox.quarantine(
                route="orders", content_type="application/json", body=ORDER,
                headers={"content-type": "application/json"}, reason="no orderId (old parser)", status_code=400,
            )
            ids["hopeless"] = await inbox.quarantine(
                route="orders", content_type="text/plain", body=b"hello", headers={},
                reason="unsupported media type", status_code=415,
            )
            return ids
        finally:
            await inbox.close()

    return asyncio.run(main())


