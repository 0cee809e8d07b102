from __future__ import annotations

import pytest

from tcwebhook.contract.kinds import EventKind
from tcwebhook.contract.models import FetchNotification, OrderEvent, OrderWebhook
from tcwebhook.errors import InvalidBody
from tcwebhook.sinks.event import Event

from .conftest import make_event

XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<WebhookEvent>
  <eventName>OrderLinesAcceptedBySupplier</eventName>
  <orderEvent>
    <orderId>3b0c2a0e</orderId>
    <line><id>l1</id></line>
    <line><id>l2</id></line>
  </orderEvent>
</WebhookEvent>"""


class TestEvent:
    """The handler's view of a stored event: fields, parsed data and extras."""

    def test_fields_copied(self) -> None:
        stored = make_event()
        event = Event.from_stored(stored, extras={"k": 1})
        assert (event.event_id, event.seq, event.kind, event.key) == (
            stored.event_id,
            stored.seq,
            stored.kind,
            stored.key,
        )
        assert event.message_id == stored.message_id
        assert event.last_updated_at == stored.last_updated_at
        assert event.received_at == stored.received_at
        assert event.extras == {"k": 1}
        event.extras["documents"] = ["a.pdf"]  # later steps attach things
        assert event.extras["documents"] == ["a.pdf"]

    def test_json_data(self) -> None:
        event = Event.from_stored(make_event())
        assert event.data["orderEvent"]["buyerOrder"]["purchaseOrderNumber"] == "PO-2025-000123"
        assert event.data is event.data  # parsed once

    def test_xml_data(self) -> None:
        event = Event.from_stored(make_event(content_type="application/xml", body=XML))
        assert event.is_xml
        assert event.data["eventName"] == "OrderLinesAcceptedBySupplier"
        assert event.data["orderEvent"]["orderId"] == "3b0c2a0e"
        assert event.data["orderEvent"]["lines"] == [{"id": "l1"}, {"id": "l2"}]

    @pytest.mark.parametrize(
        ("content_type", "body"),
        [("application/json", b"[1]"), ("application/json", b"{"), ("application/xml", b"<a>")],
    )
    def test_unreadable_body(self, content_type: str, body: bytes) -> None:
        event = Event.from_stored(make_event(content_type=content_type, body=body))
        with pytest.raises(InvalidBody):
            _ = event.data

    def test_json_model(self) -> None:
        model = Event.from_stored(make_event()).model
        assert isinstance(model, OrderWebhook)
        assert model.event_name == "OrderLinesAcceptedBySupplier"
        assert isinstance(model.event, OrderEvent)
        assert model.event.buyer_order is not None
        assert model.event.buyer_order.purchase_order_number == "PO-2025-000123"

    def test_xml_model(self) -> None:
        event = Event.from_stored(make_event(content_type="text/xml", body=XML))
        assert isinstance(event.model, OrderWebhook)
        assert [line.id for line in event.model.event.lines or ()] == ["l1", "l2"]

    def test_fetch_model(self) -> None:
        stored = make_event(kind=EventKind.ORDER_FETCH, body=b'{"orderId":"3b0c2a0e"}')
        model = Event.from_stored(stored).model
        assert isinstance(model, FetchNotification)
        assert model.order_id == "3b0c2a0e"

    def test_model_of_bad_body(self) -> None:
        event = Event.from_stored(make_event(body=b'{"eventName":"X"}'))
        with pytest.raises(InvalidBody, match="no event object"):
            _ = event.model

    def test_xml_entities_refused(self) -> None:
        bomb = b'<!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>'
        event = Event.from_stored(make_event(content_type="application/xml", body=bomb))
        with pytest.raises(InvalidBody):
            _ = event.data
