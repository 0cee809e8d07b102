"""Every sink delivers what its format renders: files take the format's extension, http its type."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from tests.orderbook.sequences import ISSUED, stored_event

from tcwebhook.config import load_settings
from tcwebhook.errors import PermanentError
from tcwebhook.formats import CsvOptions, Output
from tcwebhook.sinks.event import Event
from tcwebhook.sinks.factory import build_sink
from tcwebhook.sinks.files import FilesSink
from tcwebhook.sinks.http import HttpSink
from tcwebhook.sinks.python import OUTPUT_KEY, PythonSink

from .conftest import ErpServer

pytestmark = pytest.mark.anyio

def files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"
CSV = Output(sink="erp", format="csv", csv=CsvOptions(delimiter=";", decimal=","))


class TestFilesSink:
    """The file name follows the format: ``.csv``, the template's extension."""

    async def test_csv_file(self, tmp_path: Path) -> None:
        sink = FilesSink("erp", tmp_path, output=CSV)
        event = stored_event(ISSUED, xml=True)
        await sink.deliver(event)
        (written,) = files(tmp_path)
        assert written.suffix == ".csv" and written == sink.path_for(event)
        rows = list(csv.DictReader(io.StringIO(written.read_text(), newline=""), delimiter=";"))
        assert [r["quantity"] for r in rows] == ["60", "40", "10,5"]

    async def test_template_file(self, tmp_path: Path) -> None:
        output = Output(sink="erp", format="template", template=EXAMPLES / "order-lines.txt")
        sink = FilesSink("erp", tmp_path, output=output)
        await sink.deliver(stored_event(ISSUED))
        (written,) = files(tmp_path)
        assert written.suffix == ".txt" and len(written.read_text().splitlines()) == 3

    async def test_template_failure_leaves_no_file(self, tmp_path: Path) -> None:
        template = tmp_path / "t" / "x.txt"
        template.parent.mkdir()
        template.write_text("{{ rows[0].quantity / 0 }}")
        out = tmp_path / "out"
        sink = FilesSink("erp", out, output=Output(sink="erp", format="template", template=template))
        with pytest.raises(PermanentError, match=r"x.txt line 1 failed"):
            await sink.deliver(stored_event(ISSUED))
        assert files(out) == []


class TestHttpSink:
    """The POST carries the rendered bytes and their Content-Type."""

    async def test_csv_post(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", erp.base_url + "/ok", output=CSV)
        try:
            await sink.deliver(stored_event(ISSUED))
        finally:
            await sink.close()
        got = erp.app.received[-1]
        assert got.headers["content-type"] == "text/csv; charset=utf-8; header=present"
        assert got.body == CSV.render(stored_event(ISSUED)).body
        assert got.headers["x-tcwebhook-event-name"] == "OrderIssuedByBuyer"

    async def test_json_post(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", erp.base_url + "/ok", output=Output(sink="erp", format="json"))
        try:
            await sink.deliver(stored_event(ISSUED, xml=True))
        finally:
            await sink.close()
        got = erp.app.received[-1]
        assert got.headers["content-type"] == "application/json"
        assert got.body == Output(sink="erp", format="json").render(stored_event(ISSUED)).body


class TestPythonSink:
    """A handler finds the rendered output in ``event.extras["output"]``."""

    async def test_rendered_beside_the_event(self) -> None:
        seen: list[Event] = []
        sink = PythonSink("erp", seen.append, output=CSV)
        await sink.deliver(stored_event(ISSUED))
        await sink.close()
        assert seen[0].extras[OUTPUT_KEY].body == CSV.render(stored_event(ISSUED)).body


class TestSettings:
    """The keys are on every sink type and reach the sink through the factory."""

    def test_factory(self, tmp_path: Path) -> None:
        config = tmp_path / "c.toml"
        config.write_text(
            f'data_dir = "{tmp_path}"\n[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "{tmp_path / "o"}"\n'
            'format = "csv"\ncsv_delimiter = ";"\ncsv_decimal = ","\ncsv_columns = ["order_id", "quantity"]\n'
        )
        sink = build_sink(load_settings(config).sinks[0])
        assert isinstance(sink, FilesSink)
        assert sink.output.format == "csv" and sink.output.csv_columns == ("order_id", "quantity")

    @pytest.mark.parametrize(
        ("keys", "message"),
        [
            ('format = "template"', "needs the key 'template'"),
            ('payload = "order"', 'payload = "order" needs format'),
            ('format = "csv"\ncsv_delimiter = ","\ncsv_decimal = ","', "must differ"),
            ('format = "xlsx"', "format"),
        ],
    )
    def test_refused(self, tmp_path: Path, keys: str, message: str) -> None:
        from tcwebhook.errors import StartupError

        config = tmp_path / "c.toml"
        config.write_text(f'[[sinks]]\nname = "erp"\ntype = "http"\nurl = "https://erp.example/in"\n{keys}\n')
        with pytest.raises(StartupError, match=message):
            load_settings(config)


class TestSinksOfServers:
    """The sql sink (and sftp, amqp: the same payload source) stores what the format renders."""

    async def test_sql_row_holds_the_csv(self, tmp_path: Path) -> None:
        import sqlite3

        config = tmp_path / "c.toml"
        db = tmp_path / "erp.db"
        config.write_text(
            f'data_dir = "{tmp_path}"\n[[sinks]]\nname = "erp"\ntype = "sql"\nurl = "sqlite:///{db}"\n'
            'create_table = true\nformat = "csv"\ncsv_delimiter = ";"\ncsv_decimal = ","\n'
        )
        cfg = load_settings(config).sinks[0]
        sink = build_sink(cfg)
        probe = getattr(sink, "probe", None)
        if probe is not None:
            await probe()
        try:
            await sink.deliver(stored_event(ISSUED))
        finally:
            await sink.close()
        with sqlite3.connect(db) as conn:
            content_type, payload = conn.execute("SELECT content_type, payload FROM tradecloud_events").fetchone()
        assert content_type == "text/csv; charset=utf-8; header=present"
        assert payload == CSV.render(stored_event(ISSUED)).body.decode()

    def test_payload_extension_follows_the_format(self) -> None:
        from tcwebhook.sinks.payload import rendered_by

        assert rendered_by(CSV)(stored_event(ISSUED)).extension == ".csv"
        assert rendered_by(Output(sink="erp"))(stored_event(ISSUED, xml=True)).extension == ".xml"
