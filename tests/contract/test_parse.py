from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import ValidationError

from tcwebhook.contract.kinds import EventKind
from tcwebhook.contract.models import OrderWebhook, ShipmentWebhook
from tcwebhook.contract.names import (
    HISTORIC_ORDER_EVENT_NAMES,
    ORDER_DOCUMENTS_EVENT_NAMES,
    ORDER_EVENT_NAMES,
    RENAMED_EVENT_NAMES,
    SHIPMENT_EVENT_NAMES,
)
from tcwebhook.contract.parse import media_format, parse_stored, parse_webhook
from tcwebhook.contract.txml import data_to_xml
from tcwebhook.errors import InvalidBody, UnsupportedMediaType

from .conftest import EXAMPLES, dumps, example, example_bytes

JSON = "application/json"
XML = "application/xml"


class TestMediaTypes:
    """JSON and XML in UTF-8 are read; anything else is 415."""

    @pytest.mark.parametrize(
        ("header", "fmt"),
        [
            ("application/json", "json"),
            ("Application/JSON; charset=UTF-8", "json"),
            ('application/json;charset="utf-8"', "json"),
            ("application/json; charset=utf8; foo=bar", "json"),
            ("application/xml", "xml"),
            ("text/xml; charset=utf-8", "xml"),
        ],
    )
    def test_accepted(self, header: str, fmt: str) -> None:
        assert media_format(header) == fmt

    @pytest.mark.parametrize(
        "header",
        [None, "", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1",
         "text/xml; charset=utf-16", "application/jsonx", "multipart/form-data; boundary=x"],
    )
    def test_refused(self, header: str | None) -> None:
        with pytest.raises(UnsupportedMediaType):
            parse_webhook("orders", example_bytes("order"), header)


class TestExamples:
    """The contract examples parse on their route, in JSON and in tXML, to the same facts."""

    def test_order_event(self) -> None:
        body = example_bytes("order")
        parsed = parse_webhook("orders", body, JSON)
        assert isinstance(parsed.envelope, OrderWebhook)
        assert parsed.kind is EventKind.ORDER
        assert parsed.body_key == "orderEvent"
        assert parsed.event_name == "OrderLinesAcceptedBySupplier"
        assert parsed.order_id == "3b0c2a0e-7d7e-5a43-9c51-2f0f6a1b9e10"
        assert parsed.purchase_order_number == "PO-2025-000123"
        assert parsed.message_id == "0f1e2d3c-4b5a-4697-8877-665544332211"
        assert parsed.dedupe_key == parsed.message_id
        assert parsed.last_updated_at == "2025-05-02T08:15:29.987Z"
        assert parsed.routing_key == "order:3b0c2a0e-7d7e-5a43-9c51-2f0f6a1b9e10"
        assert parsed.shipment_id is None and parsed.shipment_number is None
        assert parsed.is_documented
        assert parsed.event is parsed.envelope.event

    def test_single_delivery_in_event_meta(self) -> None:
        parsed = parse_webhook("orders", example_bytes("single_delivery"), JSON)
        assert parsed.body_key == "singleDeliveryOrderEvent"
        assert parsed.kind is EventKind.ORDER
        assert parsed.message_id == "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
        assert parsed.purchase_order_number == "PO-2025-000456"

    def test_shipment(self) -> None:
        parsed = parse_webhook("shipments", example_bytes("shipment"), JSON)
        assert isinstance(parsed.envelope, ShipmentWebhook)
        assert parsed.kind is EventKind.SHIPMENT
        assert parsed.body_key == "shipment"
        assert parsed.shipment_id == "5e4d3c2b-2222-4b3c-8d4e-1f2a3b4c5d6e-SN-20250610-01"
        assert parsed.shipment_number == "SN-20250610-01"
        assert parsed.purchase_order_number == "PO-2025-000123"
        assert parsed.message_id == "d4c3b2a1-0f9e-4d8c-b7a6-958473625140"
        assert parsed.last_updated_at == "2025-06-10T06:40:12.000Z"
        assert parsed.routing_key == f"shipment:{parsed.shipment_id}"
        assert parsed.order_id is None

    def test_json_and_txml_agree(self, example_name: str) -> None:
        route, _ = EXAMPLES[example_name]
        data = example(example_name)
        from_json = parse_webhook(route, dumps(data), JSON)
        from_xml = parse_webhook(route, data_to_xml(data), "text/xml")
        assert from_json.routing_key == from_xml.routing_key
        assert from_json.dedupe_key == from_xml.dedupe_key
        assert from_json.envelope.model_dump() == from_xml.envelope.model_dump()
        for name in ("kind", "body_key", "event_name", "order_id", "shipment_id",
                     "purchase_order_number", "shipment_number", "message_id", "last_updated_at"):
            assert getattr(from_json, name) == getattr(from_xml, name)

    def test_utf8_bom_tolerated(self) -> None:
        parsed = parse_webhook("orders", b"\xef\xbb\xbf" + example_bytes("order"), JSON)
        assert parsed.kind is EventKind.ORDER


class TestEventNames:
    """Every documented, historic and unknown event name is accepted on its route."""

    @pytest.mark.parametrize("name", sorted(ORDER_EVENT_NAMES | HISTORIC_ORDER_EVENT_NAMES))
    def test_order_names(self, name: str) -> None:
        for key in ("orderEvent", "singleDeliveryOrderEvent", "simpleOrderEvent"):
            body = dumps({"eventName": name, key: {"orderId": "o-1"}})
            parsed = parse_webhook("orders", body, JSON)
            assert (parsed.kind, parsed.body_key, parsed.event_name) == (EventKind.ORDER, key, name)

    @pytest.mark.parametrize("name", sorted(ORDER_DOCUMENTS_EVENT_NAMES))
    def test_documents_names(self, name: str) -> None:
        body = dumps({"eventName": name, "orderDocumentsEvent": {
            "orderId": "o-2", "order": {"purchaseOrderNumber": "PO-9"},
            "documents": [{"objectId": "05d251f0-0166-4e1e-8110-8d7a507b18f4", "name": "a.pdf"}]}})
        parsed = parse_webhook("orders", body, JSON)
        assert parsed.kind is EventKind.ORDER_DOCUMENTS
        assert parsed.purchase_order_number == "PO-9"
        assert parsed.routing_key == "order:o-2"

    @pytest.mark.parametrize("name", sorted(SHIPMENT_EVENT_NAMES))
    def test_shipment_names(self, name: str) -> None:
        data = example("shipment")
        data["eventName"] = name
        assert parse_webhook("shipments", dumps(data), JSON).event_name == name

    @pytest.mark.parametrize(("old", "new"), sorted(RENAMED_EVENT_NAMES.items()))
    def test_renamed_names(self, old: str, new: str) -> None:
        route = "shipments" if old.startswith("Shipment") else "orders"
        key = {"shipments": "shipment", "orders": "orderEvent"}[route]
        if "Documents" in old:
            key = "orderDocumentsEvent"
        parsed = parse_webhook(route, dumps({"eventName": old, key: {}}), JSON)  # type: ignore[arg-type]
        assert parsed.event_name == old
        assert parsed.canonical_event_name == new
        assert parsed.is_documented

    def test_unknown_name(self) -> None:
        parsed = parse_webhook("orders", dumps({"eventName": "OrderTeleported", "orderEvent": {}}), JSON)
        assert parsed.event_name == "OrderTeleported"
        assert not parsed.is_documented

    def test_shipment_event_key_of_mid_2023(self) -> None:
        data = example("shipment")
        data["shipmentEvent"] = data.pop("shipment")
        parsed = parse_webhook("shipments", dumps(data), JSON)
        assert parsed.body_key == "shipmentEvent"
        assert parsed.shipment_id == "5e4d3c2b-2222-4b3c-8d4e-1f2a3b4c5d6e-SN-20250610-01"
        assert parsed.envelope.model_dump(exclude_unset=True)["shipmentEvent"]["id"] == parsed.shipment_id


class TestDedupeKey:
    """The message id is the dedupe key; without one it is the body hash."""

    def test_hash_without_message_id(self) -> None:
        data = example("single_delivery")
        del data["singleDeliveryOrderEvent"]["meta"]
        body = dumps(data)
        parsed = parse_webhook("orders", body, JSON)
        assert parsed.message_id is None
        assert parsed.dedupe_key == "sha256:" + hashlib.sha256(body).hexdigest()

    def test_empty_message_id_is_none(self) -> None:
        body = dumps({"eventName": "X", "orderEvent": {"orderId": "1"}, "meta": {"messageId": ""}})
        assert parse_webhook("orders", body, JSON).dedupe_key.startswith("sha256:")

    def test_top_level_meta_wins(self) -> None:
        data = example("order")
        data["orderEvent"]["meta"]["messageId"] = "inner"
        assert parse_webhook("orders", dumps(data), JSON).message_id == "0f1e2d3c-4b5a-4697-8877-665544332211"

    def test_no_order_id_no_routing_key(self) -> None:
        parsed = parse_webhook("orders", dumps({"eventName": "X", "orderEvent": {}}), JSON)
        assert parsed.routing_key is None


class TestInvalidBodies:
    """Each broken body raises InvalidBody with a message naming what is wrong."""

    @pytest.mark.parametrize(
        ("route", "body", "needle"),
        [
            ("orders", b"", "body is empty"),
            ("orders", b" \n", "body is empty"),
            ("orders", b"{not json", "not valid JSON"),
            ("orders", b'{"eventName": "caf\xe9"}', "not valid UTF-8"),
            ("orders", b"[1, 2]", "not a JSON object"),
            ("orders", b'"text"', "not a JSON object"),
            ("orders", b"null", "not a JSON object"),
            ("orders", b'{"orderEvent": {}}', "eventName is missing"),
            ("orders", b'{"eventName": null, "orderEvent": {}}', "eventName"),
            ("orders", b'{"eventName": 5, "orderEvent": {}}', "eventName"),
            ("orders", b'{"eventName": "X"}', "no event object"),
            ("orders", b'{"eventName": "X", "orderEvent": null}', "'orderEvent' must be an object"),
            ("orders", b'{"eventName": "X", "orderEvent": {}, "singleDeliveryOrderEvent": {}}',
             "more than one event object: orderEvent, singleDeliveryOrderEvent"),
            ("orders", b'{"eventName": "X", "orderEvent": {}, "orderDocumentsEvent": {}}',
             "more than one event object"),
            ("orders", b'{"eventName": "ShipmentIssuedBySupplier", "shipment": {}}',
             "'shipment' is an event object of the shipments webhook"),
            ("shipments", b'{"eventName": "X", "orderEvent": {}}',
             "'orderEvent' is an event object of the orders webhook"),
            ("shipments", b'{"eventName": "X", "shipment": {}, "shipmentEvent": {}}',
             "more than one event object"),
            ("shipments", b'{"eventName": "X", "shipment": []}', "shipment: Input should be an object"),
            ("orders", b'{"eventName": "X", "orderEvent": "x"}', "orderEvent: Input should be an object"),
            ("orders", b'{"eventName": "X", "orderEvent": {"lines": {}}}', "orderEvent.lines"),
            ("orders", b'{"eventName": "X", "orderEvent": {"lines": [{"deliverySchedule": '
                       b'[{"quantity": "lots"}]}]}}', "orderEvent.lines[0].deliverySchedule[0].quantity"),
            ("shipments", b'{"eventName": "X", "shipment": {"lines": [{"supplierLine": '
                          b'{"despatchQuantity": [1]}}]}}', "shipment.lines[0].supplierLine.despatchQuantity"),
            ("orders", b"[" * 5000 + b"]" * 5000, "not valid JSON"),
        ],
    )
    def test_invalid(self, route: str, body: bytes, needle: str) -> None:
        with pytest.raises(InvalidBody) as info:
            parse_webhook(route, body, JSON)  # type: ignore[arg-type]
        assert needle in str(info.value)

    def test_counts_further_problems(self) -> None:
        body = b'{"eventName": "X", "orderEvent": {"version": "a", "orderId": {}}}'
        with pytest.raises(InvalidBody, match=r"\(and 1 more problem\)"):
            parse_webhook("orders", body, JSON)

    def test_xml_shape_errors_name_the_field(self) -> None:
        body = (b"<webhook><eventName>X</eventName><orderEvent><line><deliveryScheduleLine>"
                b"<quantity>lots</quantity></deliveryScheduleLine></line></orderEvent></webhook>")
        with pytest.raises(InvalidBody, match=r"orderEvent\.lines\[0\]\.deliverySchedule\[0\]\.quantity"):
            parse_webhook("orders", body, XML)

    def test_xml_wrong_family(self) -> None:
        body = b"<webhook><eventName>X</eventName><shipment><id>1</id></shipment></webhook>"
        with pytest.raises(InvalidBody, match="shipments webhook"):
            parse_webhook("orders", body, XML)

    def test_xml_not_xml(self) -> None:
        with pytest.raises(InvalidBody, match="not well-formed"):
            parse_webhook("orders", example_bytes("order"), XML)


class TestStored:
    """Stored events (fetch notifications included) give their typed model back."""

    def test_posted_event(self) -> None:
        body = example_bytes("shipment")
        parsed = parse_stored(EventKind.SHIPMENT, JSON, body)
        assert parsed.envelope.model_dump() == parse_webhook("shipments", body, JSON).envelope.model_dump()

    def test_xml_event(self) -> None:
        body = data_to_xml(example("order"))
        assert parse_stored(EventKind.ORDER, XML, body).order_id == "3b0c2a0e-7d7e-5a43-9c51-2f0f6a1b9e10"

    def test_order_fetch(self) -> None:
        parsed = parse_stored(EventKind.ORDER_FETCH, JSON, json.dumps({"orderId": "o-7"}).encode())
        assert parsed.event_name == "OrderFetchRequested"
        assert parsed.order_id == "o-7"
        assert parsed.routing_key == "order:o-7"
        assert parsed.event is parsed.envelope

    def test_legacy_order_fetch(self) -> None:
        parsed = parse_stored(EventKind.ORDER_FETCH, JSON, b'{"legacyOrderId": "L-1"}')
        assert parsed.order_id is None
        assert parsed.body_key == "legacyOrderId"
        assert parsed.routing_key == "order:legacy:L-1"

    def test_shipment_fetch(self) -> None:
        parsed = parse_stored(EventKind.SHIPMENT_FETCH, JSON, b'{"shipmentId": "s-1"}')
        assert (parsed.event_name, parsed.shipment_id, parsed.routing_key) == (
            "ShipmentFetchRequested", "s-1", "shipment:s-1")

    def test_broken_fetch_body(self) -> None:
        with pytest.raises(InvalidBody):
            parse_stored(EventKind.SHIPMENT_FETCH, JSON, b"[]")


class TestSizeBounds:
    """Bodies of millions of tiny values are refused before objects are built, and fast."""

    def test_many_containers_refused(self) -> None:
        body = json.dumps({"eventName": "X", "orderEvent": {"orderId": "o", "lines": [{}] * 300_000}}).encode()
        with pytest.raises(InvalidBody, match="too many JSON values"):
            parse_webhook("orders", body, "application/json")

    def test_many_items_refused(self) -> None:
        body = json.dumps({"eventName": "X", "orderEvent": {"orderId": "o"}, "extra": [0] * 1_100_000}).encode()
        with pytest.raises(InvalidBody, match="too many JSON values"):
            parse_webhook("orders", body, "application/json")

    def test_first_bad_item_stops_validation(self) -> None:
        body = json.dumps({"eventName": "X", "orderEvent": {"orderId": "o", "lines": [1] * 150_000}}).encode()
        with pytest.raises(ValidationError) as info:
            OrderWebhook.model_validate_json(body)
        assert len(info.value.errors()) == 1
        with pytest.raises(InvalidBody, match=r"lines\[0\]"):
            parse_webhook("orders", body, "application/json")
