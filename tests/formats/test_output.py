"""The one rendering entry point: typed JSON, CSV and templates, the same for JSON and tXML bodies."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from defusedxml import ElementTree
from tests.orderbook.sequences import (
    ISSUED,
    L1,
    PO,
    RESCHEDULED,
    SEQUENCE,
    shipment,
    stored_event,
)
from tests.support.servers import CLI

from tcwebhook.errors import PermanentError, StartupError
from tcwebhook.formats import ORDER_COLUMNS, SHIPMENT_COLUMNS, CsvOptions, Output

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"
CONTRACT = Path(__file__).resolve().parents[1] / "contract" / "data"
SHIPPED = shipment(
    "ShipmentIssuedBySupplier", "2026-03-06T10:00:00Z", "Issued", "50", "22222222-0000-4000-8000-0000000001"
)


def contract_example(name: str) -> dict:
    return json.loads((CONTRACT / name).read_text())


BODIES = [*SEQUENCE, SHIPPED, *(contract_example(p.name) for p in sorted(CONTRACT.glob("*.json")))]


class TestTypedJson:
    """``format = "json"``: the typed model, byte for byte the same for a JSON and a tXML body."""

    @pytest.mark.parametrize("data", BODIES, ids=lambda d: d["eventName"])
    def test_json_and_txml_give_the_same_bytes(self, data: dict) -> None:
        output = Output(sink="erp", format="json")
        from_json = output.render(stored_event(data)).body
        from_xml = output.render(stored_event(data, xml=True)).body
        assert from_json == from_xml
        assert json.loads(from_json)["eventName"] == data["eventName"]

    def test_exact_decimals_booleans_and_dates(self) -> None:
        data = json.loads(json.dumps(ISSUED))
        data["orderEvent"]["lines"][1]["prices"]["netPrice"]["priceInTransactionCurrency"]["value"] = (
            "0.1000000000000000055511151231257827"
        )
        for xml in (False, True):
            rendered = Output(sink="erp", format="json").render(stored_event(data, xml=xml))
            assert rendered.content_type == "application/json" and rendered.extension == ".json"
            text = rendered.body.decode()
            # Written as a JSON number with every digit, not as a float or a string.
            assert '"value": 0.1000000000000000055511151231257827' in text
            typed = json.loads(text, parse_float=Decimal)
            line = typed["orderEvent"]["lines"][1]
            assert line["indicators"]["deliveryOverdue"] is False
            assert line["deliverySchedule"][0]["quantity"] == Decimal("10.5")
            assert line["deliverySchedule"][0]["date"] == "2026-06-15"
            assert typed["orderEvent"]["version"] == 1

    def test_body_is_the_bytes_as_received(self) -> None:
        event = stored_event(ISSUED, xml=True)
        rendered = Output(sink="erp").render(event)
        assert (rendered.body, rendered.content_type, rendered.extension) == (event.body, "application/xml", ".xml")


def _csv(data: dict, *, xml: bool = False, **options: object) -> bytes:
    columns = options.pop("columns", ())
    output = Output(sink="erp", format="csv", csv=CsvOptions(**options), csv_columns=columns)  # type: ignore[arg-type]
    return output.render(stored_event(data, xml=xml)).body


class TestCsv:
    """``format = "csv"``: one row per delivery of each line, read back by csv and by polars."""

    @pytest.mark.parametrize("data", BODIES, ids=lambda d: d["eventName"])
    def test_json_and_txml_give_the_same_bytes(self, data: dict) -> None:
        assert _csv(data) == _csv(data, xml=True)
        assert _csv(data, delimiter=";", decimal=",") == _csv(data, xml=True, delimiter=";", decimal=",")

    def test_rows_per_delivery_line_with_header_repeated(self) -> None:
        rows = list(csv.DictReader(io.StringIO(_csv(ISSUED).decode(), newline="")))
        assert list(rows[0]) == list(ORDER_COLUMNS)
        assert [(r["line_position"], r["schedule_position"], r["quantity"]) for r in rows] == [
            ("0001", "01", "60"),
            ("0001", "02", "40"),
            ("0002", "01", "10.5"),
        ]
        assert {r["purchase_order_number"] for r in rows} == {PO}
        assert {r["event_name"] for r in rows} == {"OrderIssuedByBuyer"}
        assert rows[2]["net_price"] == "1234.5678" and rows[2]["delivery_overdue"] == "false"

    def test_european_settings_with_the_csv_module(self) -> None:
        raw = _csv(ISSUED, delimiter=";", decimal=",", bom=True)
        assert raw.startswith(b"\xef\xbb\xbf") and raw.endswith(b"\r\n")
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=";"))
        assert [r["quantity"] for r in rows] == ["60", "40", "10,5"]
        assert rows[2]["net_price"] == "1234,5678"

    def test_quoting_is_rfc_4180(self) -> None:
        data = json.loads(json.dumps(ISSUED))
        data["orderEvent"]["lines"][0]["buyerLine"]["item"]["name"] = 'Hose; 6" "long", DN45\nspare'
        raw = _csv(data, delimiter=";", columns=("line_position", "item_name"))
        assert raw.split(b"\r\n")[1] == b'0001;"Hose; 6"" ""long"", DN45\nspare"'
        rows = list(csv.reader(io.StringIO(raw.decode(), newline=""), delimiter=";"))
        assert rows[1] == ["0001", 'Hose; 6" "long", DN45\nspare']

    def test_polars_reads_the_configured_delimiter_and_decimal(self) -> None:
        raw = _csv(ISSUED, delimiter=";", decimal=",", bom=True)
        frame = pl.read_csv(
            io.BytesIO(raw),
            separator=";",
            decimal_comma=True,
            schema_overrides={"line_position": pl.String, "schedule_position": pl.String, "order_id": pl.String},
            try_parse_dates=True,
        )
        assert frame.columns == list(ORDER_COLUMNS)
        assert frame["quantity"].dtype == pl.Float64 and frame["quantity"].to_list() == [60.0, 40.0, 10.5]
        assert frame["net_price"].to_list() == [18.75, 18.75, 1234.5678]
        assert frame["line_position"].to_list() == ["0001", "0001", "0002"]
        assert frame["delivery_overdue"].dtype == pl.Boolean
        assert frame["delivery_date"].dtype == pl.Date
        assert frame["order_version"].dtype == pl.Int64

    def test_polars_reads_the_default_settings(self) -> None:
        frame = pl.read_csv(io.BytesIO(_csv(ISSUED)), schema_overrides={"line_position": pl.String})
        assert frame["quantity"].to_list() == [60.0, 40.0, 10.5]
        assert frame["line_position"].to_list() == ["0001", "0001", "0002"]

    def test_columns_subset_and_no_header(self) -> None:
        raw = _csv(RESCHEDULED, columns=("delivery_date", "quantity", "line_id"), header=False)
        assert raw == f"2026-06-09,50,{L1}\r\n2026-07-08,50,{L1}\r\n".encode()

    def test_shipment_rows_per_shipment_line(self) -> None:
        rows = list(csv.DictReader(io.StringIO(_csv(SHIPPED).decode(), newline="")))
        assert list(rows[0]) == list(SHIPMENT_COLUMNS)
        assert [(r["load_carrier"], r["line_position"], r["quantity"]) for r in rows] == [
            ("", "0002", "10.5"),
            ("MSKU1234567", "0001", "50"),
        ]
        assert {r["shipment_number"] for r in rows} == {"SHP-77"}

    def test_unknown_column_and_clashing_marks_stop_start_up(self) -> None:
        with pytest.raises(StartupError, match="csv_columns names 'colour'"):
            Output(sink="erp", format="csv", csv_columns=("colour",))
        with pytest.raises(StartupError, match="must differ"):
            Output(sink="erp", format="csv", csv=CsvOptions(delimiter=",", decimal=","))


class TestTemplates:
    """``format = "template"``: the shipped examples, sandboxing, and errors with file and line."""

    def test_order_response_xml_example(self) -> None:
        data = json.loads(json.dumps(ISSUED))
        data["orderEvent"]["lines"][0]["buyerLine"]["item"]["name"] = "Hose <DN45> & fitting"
        output = Output(sink="erp", format="template", template=EXAMPLES / "order-response.xml")
        for xml in (False, True):
            rendered = output.render(stored_event(data, xml=xml))
            assert rendered.extension == ".xml" and rendered.content_type.startswith(("application/xml", "text/xml"))
            root = ElementTree.fromstring(rendered.body)  # autoescaped: still well-formed
            assert root.findtext("OrderNumber") == PO
            lines = root.findall("Lines/Line")
            assert [(ln.get("position"), ln.get("delivery"), ln.findtext("Quantity")) for ln in lines] == [
                ("0001", "01", "60"),
                ("0001", "02", "40"),
                ("0002", "01", "10.5"),
            ]
            assert lines[0].findtext("Description") == "Hose <DN45> & fitting"
            assert lines[2].findtext("NetPrice") == "1234.5678"

    def test_fixed_width_example(self) -> None:
        output = Output(sink="erp", format="template", template=EXAMPLES / "order-lines.txt")
        rendered = output.render(stored_event(ISSUED))
        assert rendered.extension == ".txt"
        records = rendered.body.decode().splitlines()
        assert len(records) == 3 and {len(r) for r in records} == {101}
        first = records[0]
        assert first[0:20] == PO.ljust(20)
        assert first[20:26] == "000001"
        assert first[26:30] == "01  "
        assert first[30:50] == "HH-600".ljust(20)
        assert first[50:62] == "60.000".rjust(12)
        assert first[62:70] == "20260602"
        assert first[70:84] == "18.7500".rjust(14)
        assert first[84:87] == "EUR"
        assert records[2][50:62] == "10.500".rjust(12)
        assert records[2][70:84] == "1234.5678".rjust(14)

    def test_runtime_error_names_file_and_line(self, tmp_path: Path) -> None:
        path = tmp_path / "broken.txt"
        path.write_text("header\n{% for row in rows %}\n{{ row.quantity / 0 }}\n{% endfor %}\n")
        output = Output(sink="erp", format="template", template=path)
        with pytest.raises(PermanentError, match=rf"template {path} line 3 failed: .*division"):
            output.render(stored_event(ISSUED))

    def test_sandbox_refuses_unsafe_access(self, tmp_path: Path) -> None:
        path = tmp_path / "escape.txt"
        path.write_text("{{ event.__class__.__mro__ }}\n{{ rows.__class__.__subclasses__() }}\n")
        with pytest.raises(PermanentError, match=r"line \d failed: SecurityError"):
            Output(sink="erp", format="template", template=path).render(stored_event(ISSUED))

    def test_syntax_error_stops_start_up(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.xml"
        path.write_text("<a>\n{% for x in rows %}\n{{ x }\n</a>\n")
        with pytest.raises(StartupError, match=rf"template {path} does not compile at line 3"):
            Output(sink="erp", format="template", template=path)

    def test_syntax_error_exits_3_with_one_sentence(self, tmp_path: Path) -> None:
        template = tmp_path / "bad.xml"
        template.write_text("{% if %}\n")
        config = tmp_path / "tcwebhook.toml"
        config.write_text(
            f'data_dir = "{tmp_path / "data"}"\n[[sinks]]\nname = "erp"\ntype = "files"\n'
            f'directory = "{tmp_path / "out"}"\nformat = "template"\ntemplate = "{template}"\n'
        )
        result = subprocess.run(
            [*CLI, "worker", "--config", str(config)], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 3
        message = result.stderr.strip().splitlines()
        assert len(message) == 1 and "does not compile at line 1" in message[0], result.stderr

    def test_missing_template_stops_start_up(self, tmp_path: Path) -> None:
        with pytest.raises(StartupError, match="cannot be read"):
            Output(sink="erp", format="template", template=tmp_path / "none.xml")


class TestPayloadOrder:
    """``payload = "order"`` without a book entry is a permanent failure, not an empty file."""

    def test_no_entry(self) -> None:
        with pytest.raises(PermanentError, match="order book"):
            Output(sink="erp", payload="order", format="json").render(stored_event(ISSUED))

    def test_order_needs_a_format(self) -> None:
        with pytest.raises(StartupError, match="payload"):
            Output(sink="erp", payload="order")
