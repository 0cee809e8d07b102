from __future__ import annotations

import pytest

from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import StartupError
from tcwebhook.sinks.filters import SinkFilter

from .conftest import make_event

ACCEPTED = make_event(event_name="OrderLinesAcceptedBySupplier")
SHIPPED = make_event(kind=EventKind.SHIPMENT, event_name="ShipmentIssuedBySupplier")
DOCUMENTS = make_event(kind=EventKind.ORDER_DOCUMENTS, event_name="OrderDocumentsAttachedByBuyer")


class TestSinkFilter:
    """Entries are event kinds or case-sensitive event-name globs; empty selects everything."""

    def test_empty_selects_all(self) -> None:
        flt = SinkFilter.parse([])
        assert flt.selects_all
        assert all(flt.accepts(e) for e in (ACCEPTED, SHIPPED, DOCUMENTS))

    def test_kinds(self) -> None:
        flt = SinkFilter.parse(["shipment", "order_documents"])
        assert flt.kinds == {EventKind.SHIPMENT, EventKind.ORDER_DOCUMENTS}
        assert [flt.accepts(e) for e in (ACCEPTED, SHIPPED, DOCUMENTS)] == [False, True, True]

    def test_globs(self) -> None:
        flt = SinkFilter.parse(["*BySupplier"])
        assert [flt.accepts(e) for e in (ACCEPTED, SHIPPED, DOCUMENTS)] == [True, True, False]

    def test_glob_is_case_sensitive(self) -> None:
        assert not SinkFilter.parse(["*bysupplier"]).accepts(ACCEPTED)
        assert SinkFilter.parse(["OrderLines?ccepted*"]).accepts(ACCEPTED)

    def test_kinds_and_globs_combine(self) -> None:
        flt = SinkFilter.parse(["shipment", "OrderLines*"])
        assert [flt.accepts(e) for e in (ACCEPTED, SHIPPED, DOCUMENTS)] == [True, True, False]

    def test_exact_name_and_star(self) -> None:
        assert SinkFilter.parse(["ShipmentIssuedBySupplier"]).accepts(SHIPPED)
        assert SinkFilter.parse(["*"]).accepts(DOCUMENTS)

    @pytest.mark.parametrize("entry", ["orders", "shipments", "", "  "])
    def test_likely_typo_is_startup_error(self, entry: str) -> None:
        with pytest.raises(StartupError, match=f"Sink 'erp': events entry '{entry}' is neither"):
            SinkFilter.parse([entry], sink="erp")


def test_unknown_is_no_filter_entry() -> None:
    """Events of kind unknown are chosen by accept_unknown; a filter entry for them is a start-up error."""
    with pytest.raises(StartupError, match="events entry 'unknown' is no filter; set accept_unknown = true"):
        SinkFilter.parse(["order", "unknown"], sink="erp")


def test_accept_unknown_needs_the_event_payload() -> None:
    from pydantic import ValidationError

    from tcwebhook.config import Settings

    sink = {"name": "erp", "type": "files", "directory": "/tmp/erp", "accept_unknown": True}
    assert Settings.model_validate({"sinks": [sink]}).sinks[0].accept_unknown
    with pytest.raises(ValidationError, match='accept_unknown = true needs payload = "event"'):
        Settings.model_validate({"sinks": [{**sink, "payload": "order", "format": "json"}]})
