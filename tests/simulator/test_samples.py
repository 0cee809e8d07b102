"""Sample bodies: every documented name, both formats, valid for the contract and consistent."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tcwebhook.contract import names
from tcwebhook.contract.models import Route
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.simulator import samples
from tcwebhook.simulator.calls import BodyFormat, encode
from tcwebhook.simulator.samples import Family, SampleEvent, SampleFactory, parse_selection

MIX = parse_selection("mix")


def stream(count: int, spec: str = "mix", seed: int = 11) -> list[SampleEvent]:
    return list(SampleFactory(seed=seed).stream(parse_selection(spec), count))


class TestEveryName:
    """Each (family, event name) pair builds a body the contract parser accepts, in JSON and tXML."""

    def test_selection_is_every_documented_name(self) -> None:
        assert len(MIX) == 2 * len(names.ORDER_EVENT_NAMES) + 2 + 8 == 98
        assert {n for _, n in MIX} == names.DOCUMENTED_EVENT_NAMES

    @pytest.mark.parametrize("fmt", list(BodyFormat))
    @pytest.mark.parametrize(("family", "event_name"), MIX, ids=[f"{f}-{n}" for f, n in MIX])
    def test_parses(self, family: Family, event_name: str, fmt: BodyFormat) -> None:
        factory = SampleFactory(seed=3)
        event = factory.event(family, event_name)
        body, content_type = encode(event, fmt)
        route: Route = "shipments" if family is Family.SHIPMENT else "orders"
        parsed = parse_webhook(route, body, content_type)
        assert parsed.event_name == event_name
        assert parsed.body_key == family.envelope_key
        assert parsed.kind == family.kind
        assert parsed.message_id == event.message_id
        assert parsed.is_documented
        if family is Family.SHIPMENT:
            assert parsed.shipment_id == event.shipment_id
            assert parsed.shipment_number == event.shipment_number
        else:
            assert parsed.order_id == event.order_id
            assert parsed.purchase_order_number == event.purchase_order_number
        assert parsed.last_updated_at == event.last_updated_at

    def test_every_order_event_has_line_semantics(self) -> None:
        known = set(samples._LINE_STATE) | samples._WHOLE_ORDER
        assert known == set(names.ORDER_EVENT_NAMES)


class TestConsistency:
    """Ids, numbers and times relate across the events of one run the way real traffic does."""

    def test_message_ids_unique_and_times_increase(self) -> None:
        events = stream(600)
        assert len({e.message_id for e in events}) == 600
        times = [e.last_updated_at or "" for e in events]
        assert all(times)
        assert times == sorted(times) and len(set(times)) == len(times)

    def test_orders_keep_their_numbers_lines_and_flow(self) -> None:
        by_order: dict[str, list[SampleEvent]] = defaultdict(list)
        for event in stream(400, "order,documents"):
            assert event.order_id is not None
            by_order[event.order_id].append(event)
        assert any(len(v) > 5 for v in by_order.values())
        for order_events in by_order.values():
            assert len({e.purchase_order_number for e in order_events}) == 1
            line_ids: dict[str, str] = {}
            versions: list[int] = []
            traces = set()
            for event in order_events:
                body = event.data[event.family.envelope_key]
                traces.add(body["meta"]["source"]["traceId"])
                assert body["buyerOrder"]["purchaseOrderNumber"] == event.purchase_order_number
                if "version" in body:
                    versions.append(body["version"])
                for line in body["lines"]:
                    position = line["buyerLine"]["position"]
                    assert line_ids.setdefault(position, line["id"]) == line["id"]
            assert versions == sorted(versions) and len(set(versions)) == len(versions)
            assert len(traces) == 1  # one flow per order

    def test_shipments_point_at_order_lines(self) -> None:
        factory = SampleFactory(seed=2)
        lines_of: dict[str, set[str]] = defaultdict(set)
        shipments: list[SampleEvent] = []
        for event in factory.stream(parse_selection("order,shipment"), 300):
            if event.family is Family.SHIPMENT:
                shipments.append(event)
                continue
            for line in event.data["orderEvent"]["lines"]:
                lines_of[event.purchase_order_number or ""].add(line["buyerLine"]["position"])
        numbers: dict[str, str] = {}
        for event in shipments:
            shipment = event.data["shipment"]
            assert shipment["id"] == f"{shipment['supplierShipment']['companyId']}-{event.shipment_number}"
            assert numbers.setdefault(shipment["id"], str(event.shipment_number)) == event.shipment_number
            all_lines = shipment["lines"] + [ln for c in shipment["loadCarriers"] for ln in c["lines"]]
            assert all_lines
            for line in all_lines:
                po = line["purchaseOrderNumber"]
                if po in lines_of:  # orders issued before the run have no events here
                    assert line["purchaseOrderLinePosition"] in lines_of[po]

    def test_seed_repeats_ids_but_not_message_ids(self) -> None:
        a, b = stream(20, seed=5), stream(20, seed=5)
        assert [e.order_id for e in a] == [e.order_id for e in b]
        assert not {e.message_id for e in a} & {e.message_id for e in b}


class TestShapes:
    """Event-specific parts appear where the contract puts them."""

    def test_proposal(self) -> None:
        factory = SampleFactory(seed=1)
        body = factory.event(Family.ORDER, "OrderChangesProposedBySupplier").data["orderEvent"]
        for line in body["lines"]:
            assert line["supplierLine"]["requests"]["proposal"]["status"] == "Open"
            assert line["status"]["inProgressStatus"] == "OpenSupplierProposal"
            assert line["deliveryScheduleIncludingRequests"] != line["deliverySchedule"]

    def test_single_delivery_status_line(self) -> None:
        factory = SampleFactory(seed=1)
        data = factory.event(Family.SINGLE_DELIVERY, "OrderLinesAcceptedBySupplier").data
        assert "orderEvent" not in data
        for line in data["singleDeliveryOrderEvent"]["lines"]:
            assert {"scheduledDelivery", "scheduledDeliveryInclRequests", "prices"} <= set(line["statusLine"])
            assert line["status"]["processStatus"] == "Confirmed"

    def test_documents_on_the_attaching_side(self) -> None:
        factory = SampleFactory(seed=1)
        buyer = factory.event(Family.DOCUMENTS, "OrderDocumentsAttachedByBuyer").data["orderDocumentsEvent"]
        supplier = factory.event(Family.DOCUMENTS, "OrderDocumentsAttachedBySupplier").data["orderDocumentsEvent"]
        assert buyer["buyerOrder"]["documents"] and "documents" not in buyer["supplierOrder"]
        assert supplier["supplierOrder"]["documents"] and "documents" not in supplier["buyerOrder"]
        assert buyer["lines"][0]["buyerLine"]["documents"][0]["objectId"]

    def test_shipment_status_follows_events(self) -> None:
        factory = SampleFactory(seed=4, orders_in_flight=1)
        issued = factory.event(Family.SHIPMENT, "ShipmentIssuedBySupplier")
        rejected = factory.event(Family.SHIPMENT, "ShipmentRejectedByBuyer")
        assert issued.data["shipment"]["status"] == {"processStatus": "Issued"}
        if rejected.shipment_id == issued.shipment_id:
            assert rejected.data["shipment"]["status"]["processStatus"] == "Rejected"
            assert rejected.data["shipment"]["status"]["processStatusReason"]


class TestSelection:
    """--events values."""

    @pytest.mark.parametrize(
        ("spec", "count"),
        [
            ("mix", 98),
            ("order", 44),
            ("single-delivery", 44),
            ("documents", 2),
            ("shipment", 8),
            ("documents,shipment", 10),
        ],
    )
    def test_families(self, spec: str, count: int) -> None:
        assert len(parse_selection(spec)) == count

    def test_names(self) -> None:
        assert parse_selection("OrderIssuedByBuyer, ShipmentIssuedBySupplier") == (
            (Family.ORDER, "OrderIssuedByBuyer"),
            (Family.SHIPMENT, "ShipmentIssuedBySupplier"),
        )
        assert parse_selection("OrderIssuedByBuyer", single_delivery=True) == (
            (Family.SINGLE_DELIVERY, "OrderIssuedByBuyer"),
        )

    @pytest.mark.parametrize("spec", ["OrderSynced", "nonsense", "", " , "])
    def test_rejected(self, spec: str) -> None:
        with pytest.raises(ValueError, match=r"unknown event|no events"):
            parse_selection(spec)

    def test_stream_covers_selection_each_cycle(self) -> None:
        events = stream(98 * 2)
        pairs = [(e.family, e.event_name) for e in events]
        assert set(pairs[:98]) == set(MIX) and set(pairs[98:]) == set(MIX)
