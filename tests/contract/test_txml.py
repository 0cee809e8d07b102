from __future__ import annotations

import json
import socket
import time
import tracemalloc
from decimal import Decimal
from typing import Any

import pytest

from tcwebhook.contract.models import ENVELOPES, OrderWebhook, ShipmentWebhook
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.contract.txml import data_to_xml, xml_to_data
from tcwebhook.errors import InvalidBody

from .conftest import EXAMPLES, example

XML = "application/xml"


def _order(inner: str) -> bytes:
    return f"<webhook><eventName>E</eventName><orderEvent>{inner}</orderEvent></webhook>".encode()


def _order_event(inner: str) -> dict[str, Any]:
    return dict(xml_to_data(_order(inner), OrderWebhook)["orderEvent"])


class TestRoundTrip:
    """``xml_to_data(data_to_xml(d))`` gives ``d`` back for contract-shaped bodies."""

    def test_examples(self, example_name: str) -> None:
        route, _ = EXAMPLES[example_name]
        data = example(example_name)
        body = data_to_xml(data)
        assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?><webhook>')
        # Declared numbers come back as exact decimals, as json.loads(parse_float=Decimal) reads them.
        assert xml_to_data(body, ENVELOPES[route]) == json.loads(json.dumps(data), parse_float=Decimal)

    def test_root_name_is_ignored(self) -> None:
        data = example("shipment")
        assert xml_to_data(data_to_xml(data, root="AnyRootName"), ShipmentWebhook) == data

    def test_item_names_written(self) -> None:
        body = data_to_xml(example("order")).decode()
        for tag in ("<line>", "<deliveryScheduleLine>", "<property>", "<notes/>",
                    "<deliveryScheduleIncludingRequestsLine>"):
            assert tag in body
        shipment = data_to_xml(example("shipment")).decode()
        for tag in ("<loadCarrier>", "<destination>", "<invoiceNumber>", "<contact>", "<name>"):
            assert tag in shipment

    @pytest.mark.parametrize(
        "text",
        ["", "  padded  ", "a & b < c > d", "line1\nline2", "crlf\r\nend", "tab\there", "ünïcødé ✓ 𝄞",
         "]]>", "0001"],
    )
    def test_text_survives(self, text: str) -> None:
        data = {"eventName": "E", "orderEvent": {"orderId": text}}
        assert xml_to_data(data_to_xml(data), OrderWebhook) == data

    def test_null_survives(self) -> None:
        data = {"eventName": "E", "orderEvent": {"orderId": None, "lines": None, "extra": None}}
        assert xml_to_data(data_to_xml(data), OrderWebhook) == data

    def test_scalar_types(self) -> None:
        data = {"eventName": "E", "orderEvent": {"version": 7, "indicators": {"deliveryOverdue": True},
                                                 "lines": [{"deliverySchedule": [{"quantity": 0.125}]}]}}
        assert xml_to_data(data_to_xml(data), OrderWebhook) == data

    def test_decimal_and_dates_written(self) -> None:
        from datetime import date

        body = data_to_xml({"a": Decimal("1.50"), "b": date(2025, 6, 2), "c": False})
        assert b"<a>1.50</a><b>2025-06-02</b><c>false</c>" in body


class TestReading:
    """The tXML conventions of contract §6, and the variants a sender may use."""

    def test_single_item_is_still_a_list(self) -> None:
        event = _order_event("<line><id>1</id><buyerLine><note>n</note></buyerLine></line>")
        assert event["lines"] == [{"id": "1", "buyerLine": {"notes": ["n"]}}]

    def test_repeated_items(self) -> None:
        event = _order_event("<line><id>1</id></line><orderId>o</orderId><line><id>2</id></line>")
        assert event == {"lines": [{"id": "1"}, {"id": "2"}], "orderId": "o"}

    def test_wrapper_element(self) -> None:
        event = _order_event("<lines><line><id>1</id></line><line><id>2</id></line></lines>")
        assert event["lines"] == [{"id": "1"}, {"id": "2"}]

    def test_plural_name_repeated(self) -> None:
        event = _order_event("<lines><id>1</id></lines><lines><id>2</id></lines>")
        assert event["lines"] == [{"id": "1"}, {"id": "2"}]

    def test_empty_forms(self) -> None:
        event = _order_event("<lines/><eventDates/><buyerOrder/><reason/>")
        assert event == {"lines": [], "eventDates": {}, "buyerOrder": {}, "reason": ""}

    def test_contract_fragment(self) -> None:
        body = b"""<?xml version="1.0" encoding="UTF-8"?>
<ROOT_NAME_SEE_SWAGGER>
  <eventName>OrderLinesAcceptedBySupplier</eventName>
  <orderEvent>
    <orderId>o-1</orderId>
    <line>
      <id>l-1</id>
      <deliveryScheduleLine><position>0001</position><date>2025-05-01</date><quantity>60</quantity></deliveryScheduleLine>
      <deliveryScheduleLine><position>0002</position><date>2025-06-01</date><quantity>40</quantity></deliveryScheduleLine>
    </line>
  </orderEvent>
</ROOT_NAME_SEE_SWAGGER>"""
        parsed = parse_webhook("orders", body, XML)
        line = parsed.envelope.order_event.lines[0]  # type: ignore[union-attr,index]
        assert [d.position for d in line.delivery_schedule] == ["0001", "0002"]  # type: ignore[union-attr]
        assert [d.quantity for d in line.delivery_schedule] == [60, 40]  # type: ignore[union-attr]
        assert parsed.routing_key == "order:o-1"

    def test_numbers_only_where_the_model_says(self) -> None:
        event = _order_event("<orderId>0042</orderId><version>3</version><reason>12</reason>"
                             "<line><deliveryScheduleLine><quantity> 1.5e2 </quantity><position>01"
                             "</position></deliveryScheduleLine></line>")
        assert event["orderId"] == "0042" and event["reason"] == "12" and event["version"] == 3
        assert event["lines"][0]["deliverySchedule"][0] == {"quantity": 150.0, "position": "01"}

    def test_non_numbers_left_for_the_model(self) -> None:
        event = _order_event("<version>three</version><indicators><deliveryOverdue>yes</deliveryOverdue>"
                             "</indicators>")
        assert event == {"version": "three", "indicators": {"deliveryOverdue": "yes"}}

    def test_unknown_elements(self) -> None:
        event = _order_event("<future>a</future><tag>x</tag><tag>y</tag><deep><a>1</a><a>2</a><b/></deep>")
        assert event == {"future": "a", "tag": ["x", "y"], "deep": {"a": ["1", "2"], "b": ""}}

    def test_namespaces_and_attributes_ignored(self) -> None:
        body = (b'<t:webhook xmlns:t="urn:tc" version="2"><t:eventName>E</t:eventName>'
                b'<t:orderEvent><t:orderId kind="x">o</t:orderId></t:orderEvent></t:webhook>')
        assert xml_to_data(body, OrderWebhook) == {"eventName": "E", "orderEvent": {"orderId": "o"}}

    def test_without_model_everything_is_generic(self) -> None:
        assert xml_to_data(b"<r><a>1</a><line><b/></line></r>") == {"a": "1", "line": {"b": ""}}

    def test_repeated_scalar_field_is_an_error(self) -> None:
        with pytest.raises(InvalidBody, match=r"orderEvent\.orderId: element <orderId> is repeated"):
            xml_to_data(_order("<orderId>a</orderId><orderId>b</orderId>"), OrderWebhook)

    def test_text_where_an_object_belongs(self) -> None:
        with pytest.raises(InvalidBody, match="orderEvent: Input should be a valid dictionary"):
            parse_webhook("orders", b"<w><eventName>E</eventName><orderEvent>x</orderEvent></w>", XML)

    def test_elements_where_text_belongs(self) -> None:
        with pytest.raises(InvalidBody, match=r"orderEvent\.orderId: Input should be a valid string"):
            parse_webhook("orders", _order("<orderId><a>1</a></orderId>"), XML)

    def test_shipment_event_key(self) -> None:
        data = example("shipment")
        data["shipmentEvent"] = data.pop("shipment")
        parsed = parse_webhook("shipments", data_to_xml(data), XML)
        assert parsed.body_key == "shipmentEvent"


class TestHardening:
    """Hostile XML is refused quickly, without expansion, network or file access."""

    BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<webhook><eventName>&lol9;</eventName><orderEvent/></webhook>"""

    def _refused_quickly(self, body: bytes, match: str = "DOCTYPE") -> str:
        tracemalloc.start()
        started = time.perf_counter()
        try:
            with pytest.raises(InvalidBody, match=match) as info:
                parse_webhook("orders", body, XML)
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # The memory bound is the sharp check (an expansion needs gigabytes); the time bound only
        # catches a parser that churns without allocating, generous for a loaded CI machine.
        assert elapsed < 5
        assert peak < 2 * 1024 * 1024
        return str(info.value)

    def test_billion_laughs(self) -> None:
        self._refused_quickly(self.BILLION_LAUGHS)

    def test_quadratic_blowup(self) -> None:
        body = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "' + b"x" * 50_000 + b'">]><r>'
                + b"&a;" * 10_000 + b"</r>")
        self._refused_quickly(body)

    def test_xxe_local_file(self) -> None:
        body = (b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                b"<w><eventName>&xxe;</eventName><orderEvent/></w>")
        message = self._refused_quickly(body)
        assert "root:" not in message

    def test_parameter_entity(self) -> None:
        body = (b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
                b"<w/>")
        self._refused_quickly(body)

    def test_external_dtd_fetches_nothing(self) -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            listener.setblocking(False)
            port = listener.getsockname()[1]
            body = (f'<?xml version="1.0"?><!DOCTYPE w SYSTEM "http://127.0.0.1:{port}/x.dtd">'
                    "<w><eventName>E</eventName><orderEvent/></w>").encode()
            self._refused_quickly(body)
            with pytest.raises(BlockingIOError):
                listener.accept()

    def test_undeclared_entity(self) -> None:
        self._refused_quickly(_order("<orderId>&xxe;</orderId>"), match="not well-formed")

    def test_depth_limit(self) -> None:
        body = b"<a>" * 100_000 + b"</a>" * 100_000
        self._refused_quickly(body, match="nested deeper than 64")

    def test_element_limit(self) -> None:
        body = b"<w>" + b"<x/>" * 300_000 + b"</w>"
        started = time.perf_counter()
        with pytest.raises(InvalidBody, match="more than 250000 elements"):
            parse_webhook("orders", body, XML)
        assert time.perf_counter() - started < 20  # generous: refused at the limit, not after all

    def test_limits_are_parameters(self) -> None:
        with pytest.raises(InvalidBody, match="deeper than 2"):
            xml_to_data(b"<a><b><c/></b></a>", max_depth=2)
        with pytest.raises(InvalidBody, match="more than 2 elements"):
            xml_to_data(b"<a><b/><c/></a>", max_elements=2)

    @pytest.mark.parametrize(
        ("body", "match"),
        [
            (b'<?xml version="1.0" encoding="ISO-8859-1"?><w><eventName>caf\xe9</eventName></w>', "UTF-8"),
            (b"<w><eventName>caf\xe9</eventName></w>", "not valid UTF-8"),
            ('<?xml version="1.0" encoding="UTF-16"?><w/>'.encode("utf-16"), "not valid UTF-8"),
            ("<w><eventName>E</eventName><orderEvent/></w>".encode("utf-16"), "not valid UTF-8"),
            ("<w><eventName>E</eventName><orderEvent/></w>".encode("utf-16-le"), "NUL bytes"),
            (b"", "body is empty"),
            (b"<w>just text</w>", "holds text"),
            (b"<w><eventName>E</eventName>", "not well-formed"),
            (b"<a/><b/>", "not well-formed"),
        ],
    )
    def test_refused(self, body: bytes, match: str) -> None:
        with pytest.raises(InvalidBody, match=match):
            parse_webhook("orders", body, XML)

    def test_utf8_with_bom_and_declaration(self) -> None:
        body = b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?>' + _order("<orderId>é</orderId>")
        assert parse_webhook("orders", body, XML).order_id == "é"


class TestWritingErrors:
    """What XML cannot carry is refused when writing."""

    @pytest.mark.parametrize(
        "data",
        [
            {"bad key": 1},
            {"1abc": 1},
            {"a": [[1, 2]]},
            {"a": float("nan")},
            {"a": Decimal("Infinity")},
            {"a": "bell\x07"},
            {"a": object()},
            {"bad key": []},
        ],
    )
    def test_refused(self, data: dict[str, Any]) -> None:
        with pytest.raises(ValueError):  # noqa: PT011 - the message varies per case
            data_to_xml(data)
