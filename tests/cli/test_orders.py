"""``tcwebhook orders``, ``shipments`` and ``render`` on each real store, through Typer's runner."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest
import typer
from tests.orderbook.sequences import ORDER_ID, PO, SEQUENCE, SHIPMENT_ID, new_event, shipment
from typer.testing import CliRunner

from tcwebhook.cli import orders
from tcwebhook.config import load_settings
from tcwebhook.inbox import open_inbox

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    orders.register(app)
    return app


@pytest.fixture(params=["sqlite", "postgres"])
def book_config(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[str]]:
    """A config with a CSV and a template sink, and the order sequence plus a shipment stored."""
    store = ""
    if request.param == "postgres":
        store = f'[store]\nurl = "{request.getfixturevalue("pg_url")}"\n\n'
    path = tmp_path / "tcwebhook.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n\n{store}'
        f'[[sinks]]\nname = "erp-csv"\ntype = "files"\ndirectory = "{tmp_path / "out"}"\n'
        'payload = "order"\nformat = "csv"\ncsv_delimiter = ";"\ncsv_decimal = ","\n\n'
        f'[[sinks]]\nname = "erp-lines"\ntype = "files"\ndirectory = "{tmp_path / "out2"}"\n'
        f'format = "template"\ntemplate = "{EXAMPLES / "order-lines.txt"}"\n'
    )

    async def seed() -> list[str]:
        inbox = open_inbox(load_settings(path))
        await inbox.open()
        try:
            ids = [(await inbox.store(new_event(b))).event_id for b in SEQUENCE]
            ship = shipment("ShipmentIssuedBySupplier", "2026-03-06T10:00:00Z", "Issued", "50", "s-1")
            ids.append((await inbox.store(new_event(ship))).event_id)
            return ids
        finally:
            await inbox.close()

    return path, asyncio.run(seed())


def run(app: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.stdout


class TestOrders:
    """The book read back: listings, one order with its lines and events, one shipment."""

    def test_list(self, app: typer.Typer, book_config: tuple[Path, list[str]]) -> None:
        config, _ = book_config
        rows = json.loads(run(app, "orders", "list", "--config", str(config), "--json"))
        assert [(r["id"], r["number"], r["status"], r["lineCount"], r["events"]) for r in rows] == [
            (ORDER_ID, PO, "Confirmed", 2, 4)
        ]
        assert json.loads(run(app, "orders", "list", "--status", "Issued", "--config", str(config), "--json")) == []
        assert PO in run(app, "orders", "list", "--config", str(config))

    def test_show(self, app: typer.Typer, book_config: tuple[Path, list[str]]) -> None:
        config, ids = book_config
        shown = json.loads(run(app, "orders", "show", ORDER_ID, "--config", str(config), "--json"))
        order = shown["order"]
        assert order["version"] == 4 and shown["status"] == "Confirmed"
        l1, l2 = order["lines"]
        assert [d["date"] for d in l1["deliverySchedule"]] == ["2026-06-09", "2026-07-08"]
        assert l2["status"]["processStatus"] == "Rejected"
        assert l2["prices"]["netPrice"]["priceInTransactionCurrency"]["value"] == 1234.5678
        assert [e["eventId"] for e in shown["events"]] == ids[:4]
        text = run(app, "orders", "show", ORDER_ID, "--config", str(config))
        assert "OrderLinesRejectedBySupplier" in text and "2026-07-08" in text

    def test_shipment(self, app: typer.Typer, book_config: tuple[Path, list[str]]) -> None:
        config, _ = book_config
        shown = json.loads(run(app, "shipments", "show", SHIPMENT_ID, "--config", str(config), "--json"))
        assert shown["status"] == "Issued" and shown["number"] == "SHP-77"

    def test_unknown_order(self, app: typer.Typer, book_config: tuple[Path, list[str]]) -> None:
        config, _ = book_config
        result = CliRunner().invoke(app, ["orders", "show", "nope", "--config", str(config)])
        assert result.exit_code == 1 and "no order nope" in result.output


class TestRender:
    """``render`` prints exactly what a sink would deliver for a stored event."""

    def test_order_csv(self, app: typer.Typer, book_config: tuple[Path, list[str]]) -> None:
        config, ids = book_config
        out = run(app, "render", ids[1], "--sink", "erp-csv", "--config", str(config))
        rows = list(csv.DictReader(io.StringIO(out, newline=""), delimiter=";"))
        # payload = "order": both lines of the book, not only the line the event touched.
        assert [(r["line_position"], r["delivery_date"], r["quantity"]) for r in rows] == [
            ("0001", "2026-06-09", "50"), ("0001", "2026-07-08", "50"), ("0002", "2026-06-15", "10,5")
        ]
        assert {r["event_name"] for r in rows} == {"OrderLinesConfirmedBySupplier"}

    def test_template(self, app: typer.Typer, book_config: tuple[Path, list[str]]) -> None:
        config, ids = book_config
        out = run(app, "render", ids[0], "--sink", "erp-lines", "--config", str(config))
        assert len(out.splitlines()) == 3 and all(len(line) == 101 for line in out.splitlines())

    def test_unknown_sink_exits_3(self, app: typer.Typer, book_config: tuple[Path, list[str]]) -> None:
        config, ids = book_config
        result = CliRunner().invoke(app, ["render", ids[0], "--sink", "nope", "--config", str(config)])
        assert result.exit_code == 3 and "No sink named 'nope'" in result.output
