"""The order book in each real store: kept in the transaction that stores the event, by the same
rules as ``orderbook.book`` (checked against them for every arrival order)."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
from tests.orderbook.sequences import (
    CONFIRMED,
    ISSUED,
    L1,
    ORDER_ID,
    PO,
    REJECTED,
    RESCHEDULED,
    SEQUENCE,
    SHIPMENT_ID,
    T1,
    T2,
    new_event,
    shipment,
)
from tests.orderbook.test_book import check_final, update

from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox import Inbox
from tcwebhook.orderbook.book import BookEntry, BookEvent, replay, stamp
from tcwebhook.orderbook.sql import BookWrite
from tcwebhook.orderbook.store import BookStore
from tcwebhook.orderbook.updates import fetched_write

from .conftest import MakeInbox

pytestmark = pytest.mark.anyio

KEY = f"order:{ORDER_ID}"


def book(inbox: Inbox) -> BookStore:
    assert isinstance(inbox, BookStore)
    return inbox


async def entry_of(inbox: Inbox, key: str = KEY) -> BookEntry:
    found = await book(inbox).book_entry(key)
    assert found is not None, key
    return found


def renamed(data: dict[str, Any], order_id: str, tag: str) -> dict[str, Any]:
    """``data`` for another order (and other message ids), so one store holds many sequences."""
    text = json.dumps(data).replace(ORDER_ID, order_id)
    out: dict[str, Any] = json.loads(text)
    out["meta"]["messageId"] = f"{out['meta']['messageId']}-{tag}"
    return out


class TestSequences:
    """Issued → confirmed with a new schedule → one line rejected → a delivery date moved."""

    async def test_in_order(self, inbox: Inbox) -> None:
        ids = [(await inbox.store(new_event(b))).event_id for b in SEQUENCE]
        entry = await entry_of(inbox)
        check_final(entry)
        assert [(e.event_id, e.event_name) for e in entry.events] == [
            (i, b["eventName"]) for i, b in zip(ids, SEQUENCE, strict=True)
        ]

    @pytest.mark.parametrize(("a", "b"), [(1, 3), (2, 3)], ids=["confirm<>reschedule", "reject<>reschedule"])
    async def test_two_events_swapped_in_time(self, inbox: Inbox, a: int, b: int) -> None:
        order = list(SEQUENCE)
        order[a], order[b] = order[b], order[a]
        for body in order:
            await inbox.store(new_event(body))
        check_final(await entry_of(inbox))

    async def test_txml_bodies(self, inbox: Inbox) -> None:
        for body in (ISSUED, RESCHEDULED, REJECTED, CONFIRMED):
            await inbox.store(new_event(body, xml=True))
        check_final(await entry_of(inbox))

    async def test_json_and_txml_give_the_same_book(self, inbox: Inbox) -> None:
        """JSON is kept as plain data on the way in, tXML as the typed model: read back, they agree."""
        for body in SEQUENCE:
            variant = json.loads(json.dumps(body))
            for line in variant["orderEvent"]["lines"]:
                line["reason"] = None  # an explicit null, which tXML cannot say
                supplier = line["supplierLine"]
                supplier["salesOrderLinePosition"] = supplier.pop("salesOrderPosition")  # a naming variant
            await inbox.store(new_event(variant))
            await inbox.store(new_event(renamed(body, "as-txml", "x"), xml=True))
        from_json = (await entry_of(inbox)).data
        from_xml = (await entry_of(inbox, "order:as-txml")).data
        assert json.loads(json.dumps(from_xml, default=str).replace("as-txml", ORDER_ID)) == json.loads(
            json.dumps(from_json, default=str)
        )
        assert from_json["lines"][0]["supplierLine"]["salesOrderPosition"] == "01"

    async def test_every_arrival_order_agrees_with_the_rules(self, inbox: Inbox) -> None:
        for n, order in enumerate(itertools.permutations(SEQUENCE)):
            order_id = f"perm-{n:02d}"
            bodies = [renamed(b, order_id, str(n)) for b in order]
            for body in bodies:
                await inbox.store(new_event(body))
            expected = replay([update(b, i) for i, b in enumerate(bodies, 1)])[f"order:{order_id}"]
            stored = await entry_of(inbox, f"order:{order_id}")
            assert stored.data == expected.data, [b["eventName"] for b in order]
            assert stored.status == expected.status and stored.number == PO

    async def test_stored_together_agrees_with_the_rules(self, inbox: Inbox) -> None:
        """Events of several orders stored at once (one transaction, on PostgreSQL one pipeline of
        statements that each write an event and its book rows): the book follows the stores' order."""
        orders = list(itertools.permutations(SEQUENCE))[:6]
        bodies = [renamed(b, f"together-{n}", f"t{n}") for n, order in enumerate(orders) for b in order]
        results = await asyncio.gather(*(inbox.store(new_event(b)) for b in bodies))
        stored = sorted(zip((r.seq for r in results), bodies, strict=True), key=lambda pair: pair[0])
        expected = replay([update(b, seq) for seq, b in stored])
        for n in range(len(orders)):
            key = f"order:together-{n}"
            assert (await entry_of(inbox, key)).data == expected[key].data

    async def test_a_line_twice_in_one_event(self, inbox: Inbox) -> None:
        """Two versions of one line in one event: the book keeps the newer one's stamp, so a later
        event with a time between them does not replace the line."""
        await inbox.store(new_event(ISSUED))
        twice = json.loads(json.dumps(CONFIRMED))
        newer, older = twice["orderEvent"]["lines"][0], json.loads(json.dumps(twice["orderEvent"]["lines"][0]))
        older["lastUpdatedAt"] = T1
        twice["orderEvent"]["lines"] = [newer, older]
        await inbox.store(new_event(twice))
        assert (await entry_of(inbox)).lines[L1].stamp == stamp(T2)
        between = json.loads(json.dumps(REJECTED))
        between["orderEvent"]["lines"] = [{**newer, "lastUpdatedAt": "2026-03-02T10:00:00Z", "status": {
            "processStatus": "Rejected", "logisticsStatus": "Open"}}]
        await inbox.store(new_event(between))
        entry = await entry_of(inbox)
        assert entry.lines[L1].stamp == stamp(T2)
        assert entry.lines[L1].data["status"]["processStatus"] == "Confirmed"

    async def test_a_duplicate_changes_nothing(self, inbox: Inbox) -> None:
        for body in SEQUENCE:
            await inbox.store(new_event(body))
        again = await inbox.store(new_event(CONFIRMED))
        assert again.duplicate
        entry = await entry_of(inbox)
        check_final(entry)
        assert len(entry.events) == 4

    async def test_no_book_for_an_unreadable_body(self, inbox: Inbox) -> None:
        from .conftest import order_event

        result = await inbox.store(order_event(1))  # a body without lines or header fields of note
        assert not result.duplicate
        assert await book(inbox).book_entry("order:nothing") is None


class TestFetchedOrders:
    """A fetched order replaces the order when newer (delivery-time fetches and stored fetches)."""

    def fetched(self, body: dict[str, Any], **changes: Any) -> BookWrite:
        obj = {**body["orderEvent"], "id": ORDER_ID, **changes}
        obj.pop("orderId")
        found = fetched_write(EventKind.ORDER_FETCH, obj)
        assert found is not None
        return found

    async def test_newer_fetch_replaces(self, inbox: Inbox) -> None:
        for body in SEQUENCE:
            await inbox.store(new_event(body))
        update = self.fetched(RESCHEDULED, version=5, lastUpdatedAt="2026-03-05T00:00:00Z")
        await book(inbox).apply_to_book(update, BookEvent("01FETCH", "OrderFetched", None, "fetch", 99))
        entry = await entry_of(inbox)
        assert entry.data["version"] == 5 and entry.line_count == 1 and entry.fetched_line_count == 1
        assert entry.events[-1].source == "fetch"

    async def test_older_fetch_fills_gaps(self, inbox: Inbox) -> None:
        await inbox.store(new_event(RESCHEDULED))
        update = self.fetched(ISSUED)
        await book(inbox).apply_to_book(update, BookEvent("01FETCH", "OrderFetched", None, "fetch", 99))
        entry = await entry_of(inbox)
        assert entry.data["version"] == 4 and entry.line_count == 2 and entry.fetched_line_count == 2

    async def test_stored_fetch_body(self, inbox: Inbox) -> None:
        """``reconcile --fetch`` stores the fetched order as an event of kind order_fetch."""
        from tcwebhook.inbox import NewEvent

        obj = {**ISSUED["orderEvent"], "id": ORDER_ID}
        obj.pop("orderId")
        body = json.dumps(obj).encode()
        await inbox.store(
            NewEvent(
                kind=EventKind.ORDER_FETCH, event_name="OrderFetched", dedupe_key="fetch-1",
                content_type="application/json", body=body, key=KEY, order_id=ORDER_ID,
            )
        )
        entry = await entry_of(inbox)
        assert entry.fetched_line_count == 2 and entry.line_count == 2 and entry.events[0].source == "fetch"


class TestListingAndShipments:
    """``orders list`` reads summaries; a shipment is its newest complete state."""

    async def test_summaries(self, inbox: Inbox) -> None:
        for body in SEQUENCE:
            await inbox.store(new_event(body))
        await inbox.store(new_event(renamed(ISSUED, "other-order", "x")))
        rows = await book(inbox).book_summaries()
        assert [r.object_id for r in rows] == ["other-order", ORDER_ID]
        confirmed = await book(inbox).book_summaries(status="Confirmed")
        assert [(r.object_id, r.line_count, r.events, r.number) for r in confirmed] == [(ORDER_ID, 2, 4, PO)]
        assert [r.object_id for r in await book(inbox).book_summaries(number=PO)] == ["other-order", ORDER_ID]
        assert await book(inbox).book_summaries(status="Cancelled") == []

    async def test_shipment(self, inbox: Inbox) -> None:
        new = shipment("ShipmentDepartedBySupplier", "2026-03-07T10:00:00Z", "Departed", "48", "s-2")
        old = shipment("ShipmentIssuedBySupplier", "2026-03-06T10:00:00Z", "Issued", "50", "s-1")
        await inbox.store(new_event(new))
        await inbox.store(new_event(old))
        entry = await entry_of(inbox, f"shipment:{SHIPMENT_ID}")
        assert entry.status == "Departed" and entry.number == "SHP-77"
        assert entry.data["loadCarriers"][0]["lines"][0]["supplierLine"]["despatchQuantity"] == 48
        assert [e.event_name for e in entry.events] == ["ShipmentDepartedBySupplier", "ShipmentIssuedBySupplier"]


class TestSameTransaction:
    """The book is written with the event: a second process sees both or neither."""

    async def test_visible_to_another_process(self, make_inbox: MakeInbox) -> None:
        writer, reader = make_inbox(("erp",)), make_inbox(("erp",))
        await writer.open()
        await reader.open()
        try:
            stored = await writer.store(new_event(ISSUED))
            entry = await entry_of(reader)
            assert entry.events[0].event_id == stored.event_id and entry.line_count == 2
        finally:
            await writer.close()
            await reader.close()


class TestRetention:
    """Pruning the events the book reads from keeps the book as it was."""

    async def test_prune_keeps_the_book(self, inbox: Inbox) -> None:
        import time

        from tcwebhook.inbox import AttemptOutcome, AttemptResult, DeliveryStatus

        for body in SEQUENCE:
            await inbox.store(new_event(body))
        before = await entry_of(inbox)
        for _ in range(len(SEQUENCE)):  # one per round: the key's deliveries go in order
            claims = await inbox.claim_due(owner="w", sinks=["erp"], limit=10, lease=30.0, stale_kinds=frozenset())
            for claim in claims:
                done = AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, time.time(), 0.01)
                assert await inbox.finish(claim, done)
        assert await inbox.prune(time.time() + 60) == 4
        after = await entry_of(inbox)
        check_final(after)
        assert after.data == before.data
        # The events the book still read from are listed; the others went with pruning.
        assert {e.event_name for e in after.events} <= {b["eventName"] for b in SEQUENCE}
        assert {e.event_name for e in after.events} >= {"OrderLinesRejectedBySupplier",
                                                          "OrderLinesDeliveryScheduleLogisticsUpdatedBySupplier"}


class TestOrderPayload:
    """``payload = "order"`` delivers the book's order after the event, through the real wrapper."""

    async def test_files_sink_gets_the_whole_order(self, inbox: Inbox, tmp_path: Any) -> None:
        from decimal import Decimal

        from tcwebhook.formats import Output
        from tcwebhook.sinks.files import FilesSink
        from tcwebhook.sinks.tradecloud import TradecloudSink

        sink = TradecloudSink(
            FilesSink("erp", tmp_path, output=Output(sink="erp", payload="order", format="json")),
            book=book(inbox),
            needs_book=True,
        )
        delivered = []
        for body in SEQUENCE:
            stored = await inbox.get_event((await inbox.store(new_event(body))).event_id)
            await sink.deliver(stored)
            delivered.append(stored)
        last = json.loads(sink.inner.path_for(delivered[-1]).read_text(), parse_float=Decimal)  # type: ignore[attr-defined]
        assert (last["eventName"], last["eventId"]) == (SEQUENCE[-1]["eventName"], delivered[-1].event_id)
        assert last["order"]["version"] == 4 and last["book"]["lineCount"] == 2
        l1, l2 = last["order"]["lines"]
        assert [(d["date"], d["quantity"]) for d in l1["deliverySchedule"]] == [("2026-06-09", 50), ("2026-07-08", 50)]
        assert l2["status"]["processStatus"] == "Rejected"
        assert l2["prices"]["netPrice"]["priceInTransactionCurrency"]["value"] == Decimal("1234.5678")
        assert [e["eventId"] for e in last["book"]["events"]] == [e.event_id for e in delivered]
        first = json.loads(sink.inner.path_for(delivered[1]).read_text())  # type: ignore[attr-defined]
        assert len(first["order"]["lines"]) == 2  # the confirmation touched one line; the order has both
