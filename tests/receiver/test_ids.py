"""Ids as Tradecloud makes them, through a real `serve` over TLS: any printable character is
stored unchanged from bodies, paths and queries; an encoded ``/`` in a path is refused, never
routed; a pasted trailing slash reaches the route itself."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest
from tests.ids import ID_SAMPLES, SDK_ORDER_ID
from tests.support.bodies import order_body, shipment_body
from tests.support.inbox import by_event_id, inbox_events
from tests.support.servers import RunningServer

JSON = {"content-type": "application/json"}


class TestIdsStoredUnchanged:
    """Whatever characters a PO number holds, the id is stored exactly as sent."""

    @pytest.mark.parametrize("order_id", ID_SAMPLES)
    def test_in_a_body(self, live_server: RunningServer, order_id: str) -> None:
        body = order_body()
        body["orderEvent"]["orderId"] = order_id
        with live_server.client() as c:
            r = c.post(live_server.url_orders, json=body, headers=live_server.bearer())
        assert r.status_code == 202, r.text
        assert by_event_id(live_server, r.json()["eventId"]).order_id == order_id

    @pytest.mark.parametrize("object_id", ID_SAMPLES)
    @pytest.mark.parametrize(("route", "field"), [("orders", "orderId"), ("shipments", "shipmentId")])
    def test_in_the_query(self, live_server: RunningServer, object_id: str, route: str, field: str) -> None:
        with live_server.client() as c:
            r = c.get(f"{live_server.base_url}/tradecloud/{route}", params={field: object_id},
                      headers=live_server.bearer())
        assert r.status_code == 202, r.text
        stored = by_event_id(live_server, r.json()["eventId"])
        assert (stored.order_id if route == "orders" else stored.shipment_id) == object_id

    @pytest.mark.parametrize("order_id", [i for i in ID_SAMPLES if "/" not in i and i != ".."])
    def test_in_the_path(self, live_server: RunningServer, order_id: str) -> None:
        with live_server.client() as c:
            r = c.get(f"{live_server.url_orders}/{quote(order_id, safe='')}", headers=live_server.bearer())
        assert r.status_code == 202, r.text
        assert by_event_id(live_server, r.json()["eventId"]).order_id == order_id

    def test_sdk_example_as_tradecloud_writes_it_in_a_url(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            r = c.get(f"{live_server.url_orders}/{SDK_ORDER_ID.replace('#', '%23')}", headers=live_server.bearer())
        assert r.status_code == 202, r.text
        assert by_event_id(live_server, r.json()["eventId"]).order_id == SDK_ORDER_ID

    @pytest.mark.parametrize("bad", ["a%00b", "a%1Bb", "a%7Fb", "a%C2%85b", "a%E2%80%A8b", "x" * 201])
    def test_control_characters_and_overlong_ids_refused(self, live_server: RunningServer, bad: str) -> None:
        with live_server.client() as c:
            for url in (f"{live_server.url_orders}/{bad}", f"{live_server.url_orders}?orderId={bad}"):
                r = c.get(url, headers=live_server.bearer())
                assert r.status_code == 400, url
                assert r.json()["error"] == "invalid_request"
                assert "orderId" in r.json()["detail"]


class TestEncodedSlash:
    """A %2F in the path is decoded before routing: refused with a clear 400, nothing stored."""

    @pytest.mark.parametrize(
        "path",
        [
            "/tradecloud/orders/PO%2F1",
            "/tradecloud/orders/PO%2f1",
            "/tradecloud/shipments/SN%2F1",
            "/tradecloud%2Forders",
            "/tradecloud%2Fshipments",
            "/tradecloud%2forders/abc",
        ],
    )
    def test_refused(self, live_server: RunningServer, path: str) -> None:
        before = len(inbox_events(live_server))
        with live_server.client() as c:
            for method in ("GET", "POST"):
                r = c.request(method, live_server.base_url + path, json=order_body(), headers=live_server.bearer())
                assert r.status_code == 400, (method, path, r.text)
                assert r.json()["error"] == "invalid_request"
                assert "%2F" in r.json()["detail"] and "query parameter" in r.json()["detail"]
        assert len(inbox_events(live_server)) == before

    def test_the_same_id_in_the_query_is_stored(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            r = c.get(live_server.url_orders + "?orderId=PO%2F1", headers=live_server.bearer())
        assert r.status_code == 202
        assert by_event_id(live_server, r.json()["eventId"]).order_id == "PO/1"


class TestTrailingSlash:
    """``/tradecloud/orders/`` and ``/tradecloud/shipments/`` are the routes themselves."""

    def test_post(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            orders = c.post(live_server.url_orders + "/", json=order_body(), headers=live_server.bearer())
            shipments = c.post(live_server.url_shipments + "/", json=shipment_body(), headers=live_server.bearer())
        assert (orders.status_code, shipments.status_code) == (202, 202), (orders.text, shipments.text)
        assert by_event_id(live_server, orders.json()["eventId"]).kind == "order"
        assert by_event_id(live_server, shipments.json()["eventId"]).kind == "shipment"

    def test_get_trigger_and_other_methods(self, live_server: RunningServer) -> None:
        shipment_id = f"{uuid.uuid4()}-SN-1"
        with live_server.client() as c:
            r = c.get(live_server.url_shipments + "/", params={"shipmentId": shipment_id},
                      headers=live_server.bearer())
            put = c.put(live_server.url_orders + "/", content=b"{}", headers=live_server.bearer())
        assert r.status_code == 202, r.text
        assert by_event_id(live_server, r.json()["eventId"]).shipment_id == shipment_id
        assert put.status_code == 405 and put.headers["allow"] == "GET, POST"

    def test_still_needs_auth(self, live_server: RunningServer) -> None:
        with live_server.client() as c:
            assert c.post(live_server.url_orders + "/", json=order_body()).status_code == 401
