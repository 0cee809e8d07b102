"""The webhook endpoints through real HTTPS: auth, contract, status policy, quarantine, triggers."""

from __future__ import annotations

import gzip
import json
import sqlite3
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from tests.support.bodies import order_body as order_body
from tests.support.bodies import shipment_body as shipment_body
from tests.support.inbox import by_event_id as by_event_id
from tests.support.inbox import inbox_events as inbox_events
from tests.support.inbox import quarantined as quarantined
from tests.support.servers import TOKEN, TOKEN_NEXT, RunningServer, ServerFactory

from tcwebhook.contract.txml import data_to_xml

DATA = Path(__file__).parent.parent / "contract" / "data"
JSON = {"content-type": "application/json"}


class TestAuthentication:
    """Basic and Bearer accepted; anything else is a 401 with the right challenge."""

    def test_bearer_and_basic_accepted(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            for auth in (live_server.bearer(), live_server.basic_header()):
                r = c.post(live_server.url_orders, content=json.dumps(order_body()), headers={**auth, **JSON})
                assert r.status_code == 202, r.text

    def test_two_tokens_valid_at_once(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            for token in (TOKEN, TOKEN_NEXT):
                r = c.post(
                    live_server.url_orders,
                    content=json.dumps(order_body()),
                    headers={"Authorization": f"Bearer {token}", **JSON},
                )
                assert r.status_code == 202, r.text

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer not-the-token"},
            {"Authorization": "Basic bm90OnJpZ2h0"},
            {"Authorization": "Basic %%%"},
            {"Authorization": "Negotiate abc"},
            {"Authorization": "Bearer"},
        ],
    )
    def test_refused_with_challenge(self, live_server: RunningServer, headers: dict[str, str]) -> None:
        with live_server.client() as c:
            r = c.post(live_server.url_orders, content=json.dumps(order_body()), headers={**headers, **JSON})
        assert r.status_code == 401
        challenges = r.headers.get_list("www-authenticate")
        assert any(v.startswith("Basic realm=") for v in challenges)
        assert any(v.startswith("Bearer realm=") for v in challenges)

    def test_two_authorization_headers_refused(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            r = c.post(
                live_server.url_orders,
                content=json.dumps(order_body()),
                headers=[
                    ("authorization", f"Bearer {live_server.token}"),
                    ("authorization", "Bearer other"),
                    ("content-type", "application/json"),
                ],
            )
        assert r.status_code == 401


class TestAccepted:
    """Every event family, JSON and tXML, is stored byte-for-byte with its routing keys."""

    @pytest.mark.parametrize("fmt", ["json", "xml"])
    @pytest.mark.parametrize(
        "family", ["orderEvent", "singleDeliveryOrderEvent", "simpleOrderEvent", "orderDocumentsEvent", "shipment"]
    )
    def test_family(self, live_server: RunningServer, family: str, fmt: str) -> None:
        if family == "shipment":
            data, url, kind = shipment_body(), live_server.url_shipments, "shipment"
        elif family == "orderDocumentsEvent":
            data = order_body("OrderDocumentsAttachedByBuyer", family)
            url, kind = live_server.url_orders, "order_documents"
        else:
            data, url, kind = order_body(key=family), live_server.url_orders, "order"
        body = data_to_xml(data) if fmt == "xml" else json.dumps(data).encode()
        ctype = "application/xml" if fmt == "xml" else "application/json"
        with live_server.client() as c:
            r = c.post(url, content=body, headers={**live_server.bearer(), "content-type": ctype})
        assert r.status_code == 202, r.text
        stored = by_event_id(live_server, r.json()["eventId"])
        assert stored.body == body
        assert stored.kind == kind
        assert stored.event_name == data["eventName"]
        assert stored.message_id == data["meta"]["messageId"]
        assert stored.content_type.startswith(ctype)
        assert stored.headers.get("authorization") == "Bearer [redacted]"
        if family == "shipment":
            assert stored.shipment_id == data["shipment"]["id"]
            assert stored.shipment_number == "SN-1"
            assert stored.key == f"shipment:{data['shipment']['id']}"
            assert stored.last_updated_at == "2025-06-10T06:40:12.000Z"
        else:
            assert stored.order_id == data[family]["orderId"]
            assert stored.purchase_order_number == "PO-000123"
            assert stored.key == f"order:{data[family]['orderId']}"
            assert stored.last_updated_at == "2025-05-02T08:15:29.987Z"

    def test_contract_examples(self, live_server: RunningServer) -> None:
        examples = sorted(DATA.glob("*.json"))
        assert examples
        with live_server.client() as c:
            for path in examples:
                data = json.loads(path.read_bytes())
                url = live_server.url_shipments if "shipment" in data else live_server.url_orders
                data["meta"] = {**data.get("meta", {}), "messageId": str(uuid.uuid4())}
                r = c.post(url, content=json.dumps(data), headers={**live_server.bearer(), **JSON})
                assert r.status_code == 202, (path.name, r.text)

    def test_unknown_fields_values_and_names(self, live_server: RunningServer) -> None:
        data = order_body("OrderSomethingNewHappened", brandNewTopLevel={"x": 1})
        data["orderEvent"]["status"] = {"processStatus": "Teleported", "newStatus": "x"}
        data["orderEvent"]["lines"][0]["futureField"] = [1, 2, 3]
        with live_server.client() as c:
            r = c.post(live_server.url_orders, content=json.dumps(data), headers={**live_server.bearer(), **JSON})
        assert r.status_code == 202, r.text
        assert by_event_id(live_server, r.json()["eventId"]).event_name == "OrderSomethingNewHappened"

    def test_meta_inside_event(self, live_server: RunningServer) -> None:
        data = order_body()
        meta = data.pop("meta")
        data["orderEvent"]["meta"] = meta
        with live_server.client() as c:
            r = c.post(live_server.url_orders, content=json.dumps(data), headers={**live_server.bearer(), **JSON})
        assert r.status_code == 202
        assert by_event_id(live_server, r.json()["eventId"]).message_id == meta["messageId"]


class TestDuplicates:
    """At-least-once senders: the same message is stored once and answered 200."""

    def test_same_message_id(self, live_server: RunningServer) -> None:
        data = order_body()
        with live_server.client() as c:
            first = c.post(live_server.url_orders, content=json.dumps(data), headers={**live_server.bearer(), **JSON})
            data["orderEvent"]["extra"] = "changed bytes, same messageId"
            again = c.post(live_server.url_orders, content=json.dumps(data), headers={**live_server.bearer(), **JSON})
        assert (first.status_code, again.status_code) == (202, 200)
        assert first.json()["eventId"] == again.json()["eventId"]
        assert sum(e.message_id == data["meta"]["messageId"] for e in inbox_events(live_server)) == 1

    def test_same_body_without_message_id(self, live_server: RunningServer) -> None:
        data = order_body()
        del data["meta"]
        body = json.dumps(data)
        with live_server.client() as c:
            codes = [
                c.post(live_server.url_orders, content=body, headers={**live_server.bearer(), **JSON}).status_code
                for _ in range(3)
            ]
        assert codes == [202, 200, 200]


class TestRejected:
    """Requests that can never succeed get their 4xx, and bodies land in the quarantine."""

    @pytest.mark.parametrize(
        ("body", "ctype", "status"),
        [
            (b"{not json", "application/json", 400),
            (b'{"orderEvent": {"orderId": "x"}}', "application/json", 400),
            (b'{"eventName": "OrderIssuedByBuyer"}', "application/json", 400),
            (b'{"eventName": "OrderIssuedByBuyer", "orderEvent": "not an object"}', "application/json", 400),
            (b'{"eventName": "X", "orderEvent": {"orderId": "o", "lines": {"a": 1}}}', "application/json", 400),
            (b"[1, 2, 3]", "application/json", 400),
            (b"\xff\xfe{}", "application/json", 400),
            (b"<webhook><eventName>X</eventName>", "application/xml", 400),
            (b"eventName=X", "text/plain", 415),
            (b"eventName=X", "application/x-www-form-urlencoded", 415),
        ],
    )
    def test_invalid_body_quarantined(self, live_server: RunningServer, body: bytes, ctype: str, status: int) -> None:
        before = len(quarantined(live_server))
        with live_server.client() as c:
            r = c.post(live_server.url_orders, content=body, headers={**live_server.bearer(), "content-type": ctype})
        assert r.status_code == status, r.text
        assert r.json()["error"]
        assert r.json()["detail"]
        entries = quarantined(live_server)
        assert len(entries) == before + 1
        assert any(e.body == body and e.status_code == status and e.reason for e in entries)

    def test_too_large(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            r = c.post(
                live_server.url_orders, content=b"x" * (10 * 1024 * 1024 + 1), headers={**live_server.bearer(), **JSON}
            )
        assert r.status_code == 413

    def test_nothing_partial_stored(self, live_server: RunningServer) -> None:
        before = len(inbox_events(live_server))
        with live_server.client() as c:
            c.post(
                live_server.url_orders,
                content=b'{"eventName": "X", "orderEvent": 5}',
                headers={**live_server.bearer(), **JSON},
            )
        assert len(inbox_events(live_server)) == before


class TestGetTriggers:
    """The GET webhook carries only an id and is stored as a fetch request."""

    @pytest.mark.parametrize(
        ("suffix", "kind", "field"),
        [
            ("/tradecloud/orders/3b0c2a0e-7d7e", "order_fetch", "orderId"),
            ("/tradecloud/orders?orderId=3b0c2a0e-7d7e", "order_fetch", "orderId"),
            ("/tradecloud/orders?legacyOrderId=12345", "order_fetch", "legacyOrderId"),
            ("/tradecloud/shipments/5e4d-SN-1", "shipment_fetch", "shipmentId"),
            ("/tradecloud/shipments?shipmentId=5e4d-SN-1", "shipment_fetch", "shipmentId"),
        ],
    )
    def test_trigger_stored(self, live_server: RunningServer, suffix: str, kind: str, field: str) -> None:
        with live_server.client() as c:
            r = c.get(live_server.base_url + suffix, headers=live_server.bearer())
        assert r.status_code == 202, r.text
        stored = by_event_id(live_server, r.json()["eventId"])
        assert stored.kind == kind
        assert field in json.loads(stored.body)

    @pytest.mark.parametrize(
        "suffix",
        [
            "/tradecloud/orders",
            "/tradecloud/orders?orderId=",
            "/tradecloud/orders/a%2Fb",
            "/tradecloud/orders/abc%0A",  # the whole string must match: no trailing newline
            "/tradecloud/orders?orderId=abc%0A",
            "/tradecloud/orders?orderId=abc&legacyOrderId=12345",  # exactly one of them
            "/tradecloud/shipments?orderId=x",
            "/tradecloud/shipments/" + "a" * 201,
        ],
    )
    def test_trigger_without_valid_id(self, live_server: RunningServer, suffix: str) -> None:
        with live_server.client() as c:
            r = c.get(live_server.base_url + suffix, headers=live_server.bearer())
        assert r.status_code == 400

    def test_head_stores_nothing(self, live_server: RunningServer) -> None:
        before = len(inbox_events(live_server))
        with live_server.client() as c:
            r = c.head(live_server.url_orders + "/abc-1", headers=live_server.bearer())
        assert r.status_code == 405
        assert len(inbox_events(live_server)) == before

    def test_trigger_needs_auth(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            assert c.get(live_server.url_orders + "/abc").status_code == 401


class TestOperationalEndpoints:
    """Health, OpenAPI and metrics."""

    def test_healthz_without_auth(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            r = c.get(live_server.base_url + "/healthz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok"}

    def test_openapi_is_valid(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            spec = c.get(live_server.base_url + "/openapi.json").json()
        validate(spec)
        assert "/tradecloud/orders" in spec["paths"]
        assert "/tradecloud/shipments" in spec["paths"]

    def test_metrics_need_auth(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            assert c.get(live_server.base_url + "/metrics").status_code == 401
            r = c.get(live_server.base_url + "/metrics", headers=live_server.bearer())
        assert r.status_code == 200
        assert "tcwebhook_requests_total" in r.text

    def test_unknown_path_and_method(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            assert c.get(live_server.base_url + "/nope").status_code == 404
            r = c.put(live_server.url_orders, content=b"{}", headers=live_server.bearer())
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, POST"

    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("TRACE", "/healthz", "GET, HEAD"),
            ("POST", "/healthz", "GET, HEAD"),
            ("DELETE", "/openapi.json", "GET, HEAD"),
            ("POST", "/metrics", "GET"),
            ("TRACE", "/tradecloud/orders/abc", "GET"),
            ("OPTIONS", "/tradecloud/shipments", "GET, POST"),
        ],
    )
    def test_known_path_other_method(self, live_server: RunningServer, method: str, path: str, allow: str) -> None:
        with live_server.client() as c:
            r = c.request(method, live_server.base_url + path, headers=live_server.bearer())
        assert r.status_code == 405
        assert r.headers["allow"] == allow
        assert r.json()["error"] == "method_not_allowed"

    def test_head_on_health(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            r = c.head(live_server.base_url + "/healthz")
        assert r.status_code == 200
        assert r.content == b""


class TestRequestEncodings:
    """Compressed bodies are decoded within the body limit; other codings get 415, never 400."""

    @pytest.mark.parametrize(
        ("coding", "compress"),
        [
            ("gzip", gzip.compress),
            ("x-gzip", gzip.compress),
            ("deflate", zlib.compress),  # RFC 1950, what HTTP means by deflate
            ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # bare RFC 1951
            ("gzip, identity", gzip.compress),
            ("deflate, gzip", lambda data: gzip.compress(zlib.compress(data))),  # applied in order
        ],
    )
    def test_compressed_body_stored_decoded(
        self, live_server: RunningServer, coding: str, compress: Callable[[bytes], bytes]
    ) -> None:
        body = json.dumps(order_body()).encode()
        with live_server.client() as c:
            r = c.post(live_server.url_orders, content=compress(body),
                       headers={**live_server.bearer(), **JSON, "content-encoding": coding})
        assert r.status_code == 202, r.text
        assert by_event_id(live_server, r.json()["eventId"]).body == body

    def test_unsupported_coding_is_415_with_accept_encoding(self, live_server: RunningServer) -> None:
        before = len(quarantined(live_server))
        with live_server.client() as c:
            r = c.post(live_server.url_orders, content=b"\x1b\x00\x00", headers={
                **live_server.bearer(), **JSON, "content-encoding": "br"})
        assert r.status_code == 415
        assert r.headers["accept-encoding"] == "gzip, deflate"
        assert "br" in r.json()["detail"]
        assert len(quarantined(live_server)) == before + 1

    def test_compression_bomb_is_413(self, live_server: RunningServer) -> None:
        bomb = gzip.compress(b"{" + b" " * (64 * 1024 * 1024))  # 64 MiB decoded, ~64 KiB sent
        assert len(bomb) < 200_000
        with live_server.client() as c:
            r = c.post(live_server.url_orders, content=bomb,
                       headers={**live_server.bearer(), **JSON, "content-encoding": "gzip"})
        assert r.status_code == 413
        assert "decoded body exceeds" in r.json()["detail"]

    @pytest.mark.parametrize("content", [b"not gzip at all", gzip.compress(b'{"eventName": "X"}')[:-9]])
    def test_broken_data_is_400(self, live_server: RunningServer, content: bytes) -> None:
        with live_server.client() as c:
            r = c.post(live_server.url_orders, content=content,
                       headers={**live_server.bearer(), **JSON, "content-encoding": "gzip"})
        assert r.status_code == 400
        assert "gzip" in r.json()["detail"]

    @pytest.mark.parametrize("ctype", ["application/vnd.tradecloud.order+json", "application/json+json"])
    def test_structured_json_media_type(self, live_server: RunningServer, ctype: str) -> None:
        with live_server.client() as c:
            r = c.post(live_server.url_orders, content=json.dumps(order_body()).encode(),
                       headers={**live_server.bearer(), "content-type": ctype})
        assert r.status_code == 202, r.text


class TestTransientFailure:
    """A store that cannot take the write answers 503 (retried by Tradecloud), then recovers."""

    def test_locked_store_gives_503_then_retry_succeeds(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("locked", extra="[store]\nbusy_timeout = 0.3\n")
        body = json.dumps(order_body())
        holder = sqlite3.connect(server.db_path, timeout=5, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            with server.client() as c:
                r = c.post(server.url_orders, content=body, headers={**server.bearer(), **JSON})
            assert r.status_code == 503
            assert r.headers.get("retry-after")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        with server.client() as c:
            r = c.post(server.url_orders, content=body, headers={**server.bearer(), **JSON})
        assert r.status_code == 202
        assert len([e for e in inbox_events(server) if e.body == body.encode()]) == 1
