"""The merge rules of the order book, replayed over event sequences and checked field by field."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from tests.orderbook.sequences import (
    CONFIRMED,
    ISSUED,
    L1,
    L2,
    ORDER_ID,
    PO,
    REJECTED,
    RESCHEDULED,
    SEQUENCE,
    SHIPMENT_ID,
    T1,
    T2,
    T4,
    Expected,
    shipment,
    stored_event,
)

from tcwebhook.contract.kinds import EventKind
from tcwebhook.formats.typed import api_order_data, event_data
from tcwebhook.orderbook.book import BookEntry, BookEvent, BookUpdate, apply, dump, load, replay, stamp, update_of


def update(data: dict[str, Any], seq: int, *, xml: bool = False) -> tuple[BookUpdate, BookEvent]:
    event = stored_event(data, xml=xml, seq=seq)
    found = update_of(event.kind, event_data(event))
    assert found is not None
    return found, found.event(event.event_id, event.event_name, seq)


def build(*bodies: dict[str, Any], xml: bool = False) -> BookEntry:
    # The seq is the story's step, so every order of arrival gives each event the same id.
    steps = {id(b): i for i, b in enumerate(SEQUENCE, 1)}
    book = replay([update(b, steps.get(id(b), 10 + n), xml=xml) for n, b in enumerate(bodies)])
    return book[f"order:{ORDER_ID}"]


def schedule(line: dict[str, Any]) -> tuple[tuple[str, str, str], ...]:
    return tuple((d["position"], d["date"], str(d["quantity"])) for d in line["deliverySchedule"])


FINAL = Expected()


def check_final(entry: BookEntry, want: Expected = FINAL) -> None:
    order = entry.data
    assert order["orderId"] == ORDER_ID
    assert order["version"] == want.version
    assert order["lastUpdatedAt"] == want.last_updated_at
    assert order["status"] == {"processStatus": want.status, "logisticsStatus": "Open"}
    assert order["buyerOrder"]["purchaseOrderNumber"] == PO
    assert entry.status == want.status and entry.number == PO
    l1, l2 = order["lines"]
    assert (l1["id"], l2["id"]) == (L1, L2)  # by position
    assert l1["status"]["processStatus"] == want.l1_status
    assert schedule(l1) == want.l1_schedule
    assert l1["lastUpdatedAt"] == want.l1_updated
    assert l2["status"]["processStatus"] == want.l2_status
    assert schedule(l2) == want.l2_schedule
    assert l2["lastUpdatedAt"] == want.l2_updated
    assert l2["prices"]["netPrice"]["priceInTransactionCurrency"]["value"] == Decimal(want.l2_price)
    assert entry.line_count == 2 and entry.fetched_line_count is None


class TestOrderSequence:
    """Issued → confirmed with a new schedule → one line rejected → a delivery date moved."""

    def test_in_order(self) -> None:
        entry = build(*SEQUENCE)
        check_final(entry)
        assert [e.event_name for e in entry.events] == [b["eventName"] for b in SEQUENCE]
        assert [e.event_id for e in entry.events] == [f"01EVENT{n:019d}" for n in (1, 2, 3, 4)]

    @pytest.mark.parametrize(("a", "b"), [(1, 3), (2, 3), (1, 2)], ids=["confirm<>reschedule", "reject<>reschedule",
                                                                          "confirm<>reject"])
    def test_two_events_swapped_in_time(self, a: int, b: int) -> None:
        order = list(SEQUENCE)
        order[a], order[b] = order[b], order[a]
        entry = build(*order)
        check_final(entry)
        assert {e.event_name for e in entry.events} == {b["eventName"] for b in SEQUENCE}

    def test_every_arrival_order_gives_the_same_book(self) -> None:
        first = build(*SEQUENCE)
        for order in itertools.permutations(SEQUENCE):
            entry = build(*order)
            assert entry.data == first.data, [b["eventName"] for b in order]

    def test_json_and_txml_give_the_same_book(self) -> None:
        assert build(*SEQUENCE, xml=True).data == build(*SEQUENCE).data

    def test_an_older_event_arriving_late_leaves_the_newer_line(self) -> None:
        entry = build(ISSUED, RESCHEDULED, CONFIRMED)
        (l1, _) = entry.data["lines"]
        assert l1["lastUpdatedAt"] == T4 and schedule(l1)[1] == ("02", "2026-07-08", "50")
        assert entry.data["version"] == 4

    def test_intermediate_states(self) -> None:
        after_two = build(ISSUED, CONFIRMED)
        l1, l2 = after_two.data["lines"]
        assert after_two.data["status"]["processStatus"] == "InProgress" and after_two.data["lastUpdatedAt"] == T2
        assert schedule(l1) == (("01", "2026-06-09", "50"), ("02", "2026-07-01", "50"))
        assert l2["status"]["processStatus"] == "Issued" and l2["lastUpdatedAt"] == T1

    def test_lines_never_seen_are_absent(self) -> None:
        entry = build(REJECTED)
        assert [line["id"] for line in entry.data["lines"]] == [L2]
        assert entry.line_count == 1 and entry.fetched_line_count is None

    def test_same_event_twice_is_recorded_once(self) -> None:
        first = update(ISSUED, 1)
        entry = apply(apply(None, *first), *first)
        assert len(entry.events) == 1

    def test_version_breaks_a_tie_of_times(self) -> None:
        later = {**RESCHEDULED, "orderEvent": {**RESCHEDULED["orderEvent"], "lastUpdatedAt": T4, "version": 5,
                                                 "lines": [], "status": {"processStatus": "Completed"}}}
        same_time_lower = {**RESCHEDULED, "meta": {"messageId": "x-lower"}}
        entry = build(ISSUED, later, same_time_lower)
        assert entry.data["version"] == 5 and entry.status == "Completed"


class TestFullFetch:
    """A fetched order replaces the book's order when newer; an older one only fills gaps."""

    def fetched(self, order: dict[str, Any]) -> tuple[BookUpdate, BookEvent]:
        obj = {**order["orderEvent"], "id": ORDER_ID}
        obj.pop("orderId")
        data = {"eventName": "OrderFetched", "orderEvent": api_order_data(obj)}
        found = update_of(EventKind.ORDER_FETCH, data)
        assert found is not None and found.source == "fetch"
        return found, found.event("fetch-1", "OrderFetched")

    def test_newer_fetch_replaces_as_a_whole(self) -> None:
        entry = build(*SEQUENCE)
        whole = {**RESCHEDULED, "orderEvent": {**RESCHEDULED["orderEvent"], "version": 5,
                                                 "lastUpdatedAt": "2026-03-05T00:00:00Z",
                                                 "lines": RESCHEDULED["orderEvent"]["lines"]}}
        entry = apply(entry, *self.fetched(whole))
        assert entry.data["version"] == 5
        assert [line["id"] for line in entry.data["lines"]] == [L1]  # the fetch had one line: that is the order
        assert entry.fetched_line_count == 1 and entry.line_count == 1
        assert entry.events[-1].source == "fetch"

    def test_older_fetch_adds_missing_lines_only(self) -> None:
        entry = build(RESCHEDULED)  # knows line 1 only, at T4
        entry = apply(entry, *self.fetched(ISSUED))  # the full order as it was at T1
        assert entry.data["version"] == 4
        l1, l2 = entry.data["lines"]
        assert l1["lastUpdatedAt"] == T4 and l2["lastUpdatedAt"] == T1
        assert entry.fetched_line_count == 2 and entry.line_count == 2


class TestOtherEvents:
    """Single-delivery and documents events feed the same book; shipments keep the newest whole."""

    def test_single_delivery_lines(self) -> None:
        body = {
            "eventName": "OrderLinesAcceptedBySupplier",
            "singleDeliveryOrderEvent": {
                "orderId": ORDER_ID,
                "version": 6,
                "lastUpdatedAt": "2026-03-06T00:00:00Z",
                "status": {"processStatus": "Confirmed"},
                "lines": [{"id": L2, "buyerLine": {"position": "0002"}, "lastUpdatedAt": "2026-03-06T00:00:00Z",
                           "statusLine": {"scheduledDelivery": {"date": "2026-09-01", "quantity": 3}},
                           "status": {"processStatus": "Confirmed"}}],
            },
        }
        entry = build(*SEQUENCE, body)
        l2 = entry.data["lines"][1]
        assert l2["statusLine"]["scheduledDelivery"] == {"date": "2026-09-01", "quantity": 3}
        assert entry.data["version"] == 6

    def test_documents(self) -> None:
        body = {
            "eventName": "OrderDocumentsAttachedBySupplier",
            "orderDocumentsEvent": {
                "orderId": ORDER_ID,
                "order": {"purchaseOrderNumber": PO, "documents": [{"name": "spec.pdf", "objectId": "o-1"}]},
                "lines": [{"id": L1, "position": "0001", "documents": [{"name": "cert.pdf", "objectId": "o-2"}]}],
            },
        }
        before = build(*SEQUENCE)
        entry = build(*SEQUENCE, body)
        assert entry.data["documents"] == [
            {"name": "spec.pdf", "objectId": "o-1"},
            {"name": "cert.pdf", "objectId": "o-2", "lineId": L1, "linePosition": "0001"},
        ]
        assert entry.data["lines"] == before.data["lines"] and entry.data["version"] == 4
        first = build(body, *SEQUENCE)  # documents first: the order events still build the header
        assert first.data["version"] == 4 and first.number == PO and len(first.data["documents"]) == 2

    def test_shipment_newest_complete(self) -> None:
        old = shipment("ShipmentIssuedBySupplier", "2026-03-06T10:00:00Z", "Issued", "50", "s-1")
        new = shipment("ShipmentDepartedBySupplier", "2026-03-07T10:00:00Z", "Departed", "48", "s-2")
        for order in ((old, new), (new, old)):
            book = replay([update(b, n) for n, b in enumerate(order, 1)])
            entry = book[f"shipment:{SHIPMENT_ID}"]
            assert entry.status == "Departed" and entry.number == "SHP-77"
            assert entry.data["loadCarriers"][0]["lines"][0]["supplierLine"]["despatchQuantity"] == 48
            assert len(entry.events) == 2


class TestStamps:
    """Times compare as instants, whatever their zone or precision."""

    def test_zones(self) -> None:
        assert stamp("2026-03-04T16:45:10.5+01:00") == stamp("2026-03-04T15:45:10.500Z")
        assert stamp("2026-03-04T15:45:10Z", 2) > stamp("2026-03-04T15:45:10Z", 1) > stamp("2026-03-04T15:45:10Z")
        assert stamp(None) < stamp("1970-01-01T00:00:00Z") and stamp("not a date") == stamp(None)

    def test_stored_form_keeps_decimals(self) -> None:
        value = {"q": Decimal("0.1000000000000000055511151231257827"), "n": 3, "b": False}
        assert load(dump(value)) == value
