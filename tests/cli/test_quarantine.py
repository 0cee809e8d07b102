"""`quarantine list/show/reprocess` against a real inbox file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from tests.cli.conftest import invoke, run_json, seed


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
        ids = seed(config)
        result = invoke(app, "quarantine", "reprocess", ids["hopeless"], "missing", "-c", str(config), "--json")
        assert result.exit_code == 1
        rows = json.loads(result.stdout)
        assert rows[0]["error"] and rows[0]["event_id"] is None
        assert "missing" in rows[1]["error"]
