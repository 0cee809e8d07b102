"""The API-aware sink wrapper with the real files and python sinks."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.tradecloud_api.conftest import FAST, make_event
from tests.tradecloud_api.fake_api import FakeTradecloud

from tcwebhook.config import FilesSinkSettings, PythonSinkSettings, Settings, SinkSettings, TradecloudSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import PermanentError, StartupError
from tcwebhook.sinks.event import Event
from tcwebhook.sinks.files import FilesSink
from tcwebhook.sinks.python import PythonSink
from tcwebhook.sinks.tradecloud import DocumentFile, TradecloudSink, wrap_sinks
from tcwebhook.tradecloud_api import TradecloudClient

pytestmark = pytest.mark.anyio

ORDER = {"id": "ord-1", "buyerOrder": {"purchaseOrderNumber": "PO-1"}, "lines": [{"id": "l1"}, {"id": "l2"}]}
OBJ = "0b5e8f43-0e4a-4c5b-9a1d-2f7c9e6b1a00"
DOCS_EVENT = {
    "eventName": "OrderDocumentsAttachedByBuyer",
    "orderDocumentsEvent": {
        "orderId": "ord-1",
        "buyerOrder": {"documents": [{"name": "Spec", "objectId": OBJ}]},
        "lines": [{"documents": [{"name": "Spec copy", "objectId": "obj-2"}]}],
    },
}


def settings(tmp_path: Path, tc: TradecloudSettings, *sinks: SinkSettings) -> Settings:
    return Settings(data_dir=tmp_path / "data", sinks=sinks, tradecloud=tc)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)


class TestFilesSink:
    """Documents and the full order land beside the event file."""

    async def test_documents_are_written_in_the_events_folder(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        fake_api.add_document(OBJ, "spec.pdf", b"%PDF spec", "application/pdf")
        fake_api.add_document("obj-2", "spec.pdf", b"%PDF copy", "application/pdf")
        inner = FilesSink("erp", tmp_path / "drop")
        event = make_event(
            EventKind.ORDER_DOCUMENTS, DOCS_EVENT, order_id="ord-1", event_name="OrderDocumentsAttachedByBuyer"
        )
        cfg = FilesSinkSettings(name="erp", directory=tmp_path / "drop", documents=True)
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            [sink] = wrap_sinks([inner], settings(tmp_path, tc_settings, cfg), tc)
            await sink.deliver(event)
        stem = inner.path_for(event).name.removesuffix(".json")
        files = sorted(p.name for p in (tmp_path / "drop").iterdir())
        assert files == sorted([f"{stem}.json", f"{stem}.documents"])
        folder = tmp_path / "drop" / f"{stem}.documents"
        assert sorted(p.name for p in folder.iterdir()) == ["spec-2.pdf", "spec.pdf"]
        assert (folder / "spec.pdf").read_bytes() == b"%PDF spec"
        assert (folder / "spec-2.pdf").read_bytes() == b"%PDF copy"
        assert (tmp_path / "drop" / f"{stem}.json").read_bytes() == event.body
        assert not (tmp_path / "data" / "documents" / "erp" / event.event_id).exists()  # staging removed

    async def test_enrich_writes_the_full_order(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        fake_api.add_order(ORDER)
        inner = FilesSink("erp", tmp_path / "drop")
        event = make_event(EventKind.ORDER, {"orderEvent": {"orderId": "ord-1", "lines": [{"id": "l2"}]}})
        cfg = FilesSinkSettings(name="erp", directory=tmp_path / "drop", enrich=True)
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            [sink] = wrap_sinks([inner], settings(tmp_path, tc_settings, cfg), tc)
            await sink.deliver(event)
        [full] = (tmp_path / "drop").glob("*.full-order.json")
        assert orjson.loads(full.read_bytes()) == ORDER

    async def test_get_trigger_is_delivered_as_the_full_object(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        fake_api.add_order(ORDER)
        inner = FilesSink("erp", tmp_path / "drop")
        trigger = make_event(EventKind.ORDER_FETCH, {"orderId": "ord-1"}, event_name="OrderFetch")
        cfg = FilesSinkSettings(name="erp", directory=tmp_path / "drop")
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            [sink] = wrap_sinks([inner], settings(tmp_path, tc_settings, cfg), tc)
            await sink.deliver(trigger)
        [written] = (tmp_path / "drop").iterdir()
        assert "_OrderFetch_PO-1_evt-0001" in written.name
        assert orjson.loads(written.read_bytes()) == ORDER


class TestPythonSink:
    """A handler receives ``extras`` with the full order and document paths."""

    async def test_extras(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path) -> None:
        fake_api.add_order(ORDER)
        fake_api.add_document(OBJ, "spec.pdf", b"%PDF spec", "application/pdf")
        fake_api.add_document("obj-2", "other.pdf", b"%PDF other", "application/pdf")
        recorder = Recorder()
        inner = PythonSink("handler", recorder)
        async with TradecloudClient(tc_settings, backoff=FAST) as tc:
            cfg = PythonSinkSettings(name="handler", callable="x:y", enrich=True, documents=True)
            [sink] = wrap_sinks([inner], settings(tmp_path, tc_settings, cfg), tc)
            await sink.deliver(make_event(EventKind.ORDER_DOCUMENTS, DOCS_EVENT, seq=1))
            await sink.deliver(make_event(EventKind.ORDER, {"orderEvent": {"orderId": "ord-1"}}, seq=2))
        docs_event, order_event = recorder.events
        docs: list[DocumentFile] = docs_event.extras["documents"]
        assert [(d.filename, d.path.read_bytes()) for d in docs] == [
            ("spec.pdf", b"%PDF spec"),
            ("other.pdf", b"%PDF other"),
        ]
        assert docs[0].path.parent == tmp_path / "data" / "documents" / "handler" / "evt-0001"
        assert docs[0].ref.object_id == OBJ
        assert "full_order" not in docs_event.extras  # only order events are enriched
        assert order_event.extras == {"full_order": ORDER}


class TestWiring:
    """What happens without credentials, and plain events pass through untouched."""

    async def test_options_need_credentials(self, tc_settings: TradecloudSettings, tmp_path: Path) -> None:
        cfg = FilesSinkSettings(name="erp", directory=tmp_path / "drop", documents=True)
        with pytest.raises(StartupError, match="'erp' uses enrich/documents"):
            wrap_sinks([FilesSink("erp", tmp_path / "drop")], settings(tmp_path, tc_settings, cfg), None)

    async def test_trigger_without_api_dead_letters(self, tc_settings: TradecloudSettings, tmp_path: Path) -> None:
        cfg = FilesSinkSettings(name="erp", directory=tmp_path / "drop")
        [sink] = wrap_sinks([FilesSink("erp", tmp_path / "drop")], settings(tmp_path, tc_settings, cfg), None)
        with pytest.raises(PermanentError, match=r"needs the Tradecloud API"):
            await sink.deliver(make_event(EventKind.SHIPMENT_FETCH, {"shipmentId": "s"}))

    async def test_plain_event_is_passed_as_is(self, tmp_path: Path) -> None:
        seen: list[Any] = []

        class Inner:
            name = "inner"

            def accepts(self, event: Any) -> bool:
                return True

            async def deliver(self, event: Any) -> None:
                seen.append(event)

            async def close(self) -> None:
                seen.append("closed")

        sink = TradecloudSink(Inner())
        event = make_event(EventKind.ORDER, {"orderEvent": {}})
        assert sink.name == "inner" and sink.accepts(event)
        await sink.deliver(event)
        await sink.close()
        assert seen == [event, "closed"]

    async def test_batch_passes_plain_events_together(self, tmp_path: Path) -> None:
        """Plain events reach a batching inner sink as one batch; a trigger without the API is
        refused alone, as ``deliver`` refuses it."""
        inner = FilesSink("drop", tmp_path)
        sink = TradecloudSink(inner)
        assert sink.batches and not TradecloudSink(_Plain()).batches
        batches: list[int] = []
        real = inner.deliver_batch

        async def counted(events: Sequence[Any]) -> list[BaseException | None]:
            batches.append(len(events))
            return await real(events)

        inner.deliver_batch = counted  # type: ignore[method-assign]
        events = [
            make_event(EventKind.ORDER, {"orderEvent": {}}),
            make_event(EventKind.ORDER_FETCH, {"orderId": "o"}),
            dataclasses.replace(make_event(EventKind.ORDER, {"orderEvent": {}}), seq=2, event_id="E2"),
        ]
        results = await sink.deliver_batch(events)
        assert batches == [2]
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], PermanentError)
        assert _names(tmp_path) == sorted(inner.path_for(events[i]).name for i in (0, 2))


class _Plain:
    name = "plain"

    def accepts(self, event: Any) -> bool:
        return True

    async def deliver(self, event: Any) -> None:
        return None

    async def close(self) -> None:
        return None


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())
