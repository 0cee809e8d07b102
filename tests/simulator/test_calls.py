"""Building webhook calls: GET URLs, file bodies, credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcwebhook.simulator.calls import default_events, file_requests, get_url, sniff_content_type
from tcwebhook.simulator.credentials import Credentials
from tcwebhook.simulator.samples import Family, SampleFactory


class TestGetUrl:
    """The historic GET form keeps the configured path and query."""

    def test_path_and_query(self) -> None:
        event = SampleFactory(seed=1).event(Family.ORDER, "OrderIssuedByBuyer")
        assert get_url("https://h/a/", event, "path") == f"https://h/a/{event.order_id}"
        assert get_url("https://h/a?x=1", event, "query") == f"https://h/a?x=1&orderId={event.order_id}"

    def test_documents_use_the_order_id(self) -> None:
        event = SampleFactory(seed=1).event(Family.DOCUMENTS, "OrderDocumentsAttachedByBuyer")
        assert event.object_id == event.order_id


class TestDefaultEvents:
    """Without --events, a URL gets what its webhook would send."""

    @pytest.mark.parametrize(
        ("url", "shipment_url", "expected"),
        [
            ("https://h/tradecloud/orders", None, "order,single-delivery,documents"),
            ("https://h/tradecloud/shipments", None, "shipment"),
            ("https://h/hook", "https://h/ship", "mix"),
        ],
    )
    def test_default(self, url: str, shipment_url: str | None, expected: str) -> None:
        assert default_events(url, shipment_url) == expected


class TestFileBody:
    """--body FILE: the same bytes every time, content type sniffed unless given."""

    def test_file(self, tmp_path: Path) -> None:
        path = tmp_path / "event.xml"
        path.write_bytes(b"  <x/>")
        calls = list(file_requests(path, 3, url="https://h/"))
        assert [c.duplicate for c in calls] == [False, True, True]
        assert {c.content_type for c in calls} == {"application/xml"}
        assert sniff_content_type(b'{"a":1}') == "application/json"
        override = next(file_requests(path, 1, url="https://h/", content_type="text/xml"))
        assert override.content_type == "text/xml"


class TestCredentials:
    """--token / --basic parsing; the secret never shows in a repr."""

    def test_parse(self) -> None:
        assert Credentials.parse() is None
        bearer = Credentials.parse(token="t0ken-value")
        assert bearer is not None and bearer.header() == "Bearer t0ken-value"
        basic = Credentials.parse(basic="user:p:w")
        assert basic is not None and basic.header() == "Basic dXNlcjpwOnc="
        assert "t0ken-value" not in repr(bearer) and "p:w" not in repr(basic)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"token": "a", "basic": "u:p"}, "not both"),
            ({"token": " "}, "empty"),
            ({"basic": "nopass"}, "USER:PASS"),
            ({"basic": ":p"}, "USER:PASS"),
            ({"basic": "u:"}, "USER:PASS"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, str], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            Credentials.parse(**kwargs)
