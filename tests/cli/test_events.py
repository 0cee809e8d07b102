"""The operator commands through Typer's runner against a real inbox file."""

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

from tcwebhook.cli import events
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
    events.register(app)
    return app


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tcwebhook.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n\n'
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


class TestEventsList:
    """events list / dead: tables for people, JSON for scripts, with filters."""

    def test_json_and_filters(self, app: typer.Typer, config: Path) -> None:
        ids = seed(config)
        rows = run_json(app, "events", "list", "-c", str(config))
        assert [r["event_id"] for r in rows] == [ids["shipment"], ids["new"], ids["dead"], ids["ok"]]
        assert {r["event_id"]: r["status"] for r in rows}[ids["dead"]] == "dead"
        assert [r["event_id"] for r in run_json(app, "events", "list", "-c", str(config), "--status", "dead")] == [
            ids["dead"]
        ]
        assert len(run_json(app, "events", "list", "-c", str(config), "--number", "PO-2")) == 1
        assert len(run_json(app, "events", "list", "-c", str(config), "--number", "SN-1")) == 1
        assert len(run_json(app, "events", "list", "-c", str(config), "--kind", "shipment")) == 1
        assert len(run_json(app, "events", "list", "-c", str(config), "--event", "Shipment*")) == 1
        assert len(run_json(app, "events", "list", "-c", str(config), "--since", "1h")) == 4
        assert run_json(app, "events", "list", "-c", str(config), "--until", "2000-01-01") == []
        assert len(run_json(app, "events", "list", "-c", str(config), "--limit", "2")) == 2

    def test_table(self, app: typer.Typer, config: Path) -> None:
        ids = seed(config)
        result = invoke(app, "events", "list", "-c", str(config))
        assert result.exit_code == 0, result.output
        assert ids["ok"] in result.stdout
        assert "delivered" in result.stdout and "PO-0" in result.stdout

    def test_bad_input(self, app: typer.Typer, config: Path) -> None:
        assert invoke(app, "events", "list", "-c", str(config), "--status", "lost").exit_code == 2
        assert invoke(app, "events", "list", "-c", str(config), "--since", "last tuesday").exit_code == 2
        missing = invoke(app, "events", "list", "-c", str(config.with_name("missing.toml")))
        assert missing.exit_code == 3

    def test_dead(self, app: typer.Typer, config: Path) -> None:
        ids = seed(config)
        (row,) = run_json(app, "events", "dead", "-c", str(config))
        assert row["event_id"] == ids["dead"]
        assert row["errors"] == {"erp": "PermanentError: unknown item"}
        table = invoke(app, "events", "dead", "-c", str(config))
        assert "unknown item" in table.stdout and "replay --dead" in table.stdout


class TestEventsShow:
    """events show: fields, pretty body, deliveries and attempts."""

    def test_json(self, app: typer.Typer, config: Path) -> None:
        ids = seed(config)
        data = run_json(app, "events", "show", ids["dead"], "-c", str(config))
        assert data["event_id"] == ids["dead"]
        assert json.loads(data["body"]) == {"eventName": "OrderIssuedByBuyer", "n": 1}
        assert data["headers"] == {"user-agent": "tradecloud"}
        assert [(d["sink"], d["status"], d["attempts"]) for d in data["deliveries"]] == [("erp", "dead", 1)]
        assert [(a["outcome"], a["error"]) for a in data["attempts"]] == [
            ("permanent", "PermanentError: unknown item")
        ]

    def test_rich(self, app: typer.Typer, config: Path) -> None:
        ids = seed(config)
        result = invoke(app, "events", "show", ids["ok"], "-c", str(config))
        assert result.exit_code == 0, result.output
        assert "deliveries" in result.stdout and "attempts" in result.stdout
        assert '"eventName": "OrderIssuedByBuyer"' in result.stdout  # indented JSON
        xml = invoke(app, "events", "show", ids["shipment"], "-c", str(config))
        assert "<shipment/>" in xml.stdout

    def test_unknown(self, app: typer.Typer, config: Path) -> None:
        seed(config)
        result = invoke(app, "events", "show", "nope", "-c", str(config))
        assert result.exit_code == 1
        assert "not found" in result.output


class TestEventsReplay:
    """events replay: by id, every dead one, or since a time."""

    def test_replay_dead(self, app: typer.Typer, config: Path) -> None:
        ids = seed(config)
        summary = run_json(app, "events", "replay", "--dead", "-c", str(config))
        assert summary == {"selected": 1, "events": 1, "requeued": 1, "missing": []}
        rows = run_json(app, "events", "list", "-c", str(config), "--status", "pending")
        assert {r["event_id"] for r in rows} == {ids["dead"], ids["new"], ids["shipment"]}

    def test_replay_ids_with_progress(self, app: typer.Typer, config: Path) -> None:
        ids = seed(config)
        result = invoke(app, "events", "replay", ids["ok"], "-c", str(config))
        assert result.exit_code == 0, result.output
        assert "Re-queued 1 deliveries of 1 event(s)" in result.stdout
        assert run_json(app, "events", "show", ids["ok"], "-c", str(config))["status"] == "pending"

    def test_replay_since(self, app: typer.Typer, config: Path) -> None:
        seed(config)
        summary = run_json(app, "events", "replay", "--since", "1h", "-c", str(config))
        assert summary["selected"] == 4

    def test_missing_and_usage(self, app: typer.Typer, config: Path) -> None:
        seed(config)
        result = invoke(app, "events", "replay", "nope", "-c", str(config), "--json")
        assert result.exit_code == 1
        assert json.loads(result.stdout)["missing"] == ["nope"]
        assert invoke(app, "events", "replay", "-c", str(config)).exit_code == 2
        assert invoke(app, "events", "replay", "x", "--dead", "-c", str(config)).exit_code == 2


class TestQuarantine:
    """quarantine list / show / reprocess."""

    def test_list_and_show(self, app: typer.Typer, config: Path) -> None:
        ids = seed(config)
        rows = run_json(app, "quarantine", "list", "-c", str(config))
        assert [r["id"] for r in rows] == [ids["hopeless"], ids["quarantined"]]
        shown = run_json(app, "quarantine", "show", ids["hopeless"], "-c", str(config))
        assert (shown["body"], shown["status_code"], shown["reason"]) == ("hello", 415, "unsupported media type")
        table = invoke(app, "quarantine", "list", "-c", str(config))
        assert "unsupported media type" in table.stdout
        assert "hello" in invoke(app, "quarantine", "show", ids["hopeless"], "-c", str(config)).stdout

    def test_reprocess(self, app: typer.Typer, config: Path) -> None:
        pytest.importorskip("tcwebhook.contract.parse")
        ids = seed(config)
        (row,) = run_json(app, "quarantine", "reprocess", ids["quarantined"], "-c", str(config))
        assert row["error"] is None and not row["duplicate"]
        stored = run_json(app, "events", "show", row["event_id"], "-c", str(config))
        assert (stored["purchase_order_number"], stored["key"], stored["status"]) == ("PO-9", "order:o-9", "pending")
        assert stored["deliveries"][0]["next_attempt_at"] is not None  # for the background loop
        assert run_json(app, "quarantine", "show", ids["quarantined"], "-c", str(config))[
            "reprocessed_event_id"
        ] == row["event_id"]
        again = run_json(app, "quarantine", "reprocess", ids["quarantined"], "-c", str(config))
        assert again[0]["duplicate"] and again[0]["event_id"] == row["event_id"]

    def test_still_invalid(self, app: typer.Typer, config: Path) -> None:
        pytest.importorskip("tcwebhook.contract.parse")
        ids = seed(config)
        result = invoke(app, "quarantine", "reprocess", ids["hopeless"], "missing", "-c", str(config), "--json")
        assert result.exit_code == 1
        rows = json.loads(result.stdout)
        assert rows[0]["error"] and rows[0]["event_id"] is None
        assert "missing" in rows[1]["error"]


class TestWorkerCommand:
    """worker refuses to start without sinks (exit 3, one sentence)."""

    def test_no_sinks(self, app: typer.Typer, tmp_path: Path) -> None:
        config = tmp_path / "empty.toml"
        config.write_text(f'data_dir = "{tmp_path}"\n')
        result = invoke(app, "worker", "-c", str(config))
        assert result.exit_code == 3
        assert "nothing to deliver" in result.output
