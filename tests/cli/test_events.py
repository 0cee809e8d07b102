"""`events list/dead/show/replay` against a real inbox file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from tests.cli.conftest import event, invoke, run_json, seed

from tcwebhook.config import load_settings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox import open_inbox


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

    def test_shipment_rows_show_the_shipment_number(self, app: typer.Typer, config: Path) -> None:
        async def store() -> None:
            inbox = open_inbox(load_settings(config))
            await inbox.open()
            try:
                await inbox.store(event(7, kind=EventKind.SHIPMENT, event_name="ShipmentIssuedBySupplier",
                                        key="shipment:s-7", shipment_id="s-7", shipment_number="SN-7",
                                        purchase_order_number="PO-7"))
            finally:
                await inbox.close()

        asyncio.run(store())
        result = invoke(app, "events", "list", "-c", str(config), "--kind", "shipment")
        assert result.exit_code == 0, result.output
        assert "SN-7" in result.stdout and "PO-7" not in result.stdout

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
        assert {k: summary[k] for k in ("selected", "events", "requeued", "missing")} == {
            "selected": 1, "events": 1, "requeued": 1, "missing": []
        }
        assert summary["skipped_delivered"] == 0 and summary["superseded"] == 0
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
