from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from tcwebhook.contract.enums import InProgressStatus, ProcessStatus
from tcwebhook.contract.models import (
    ENVELOPES,
    OrderWebhook,
    Shipment,
    ShipmentWebhook,
)

from .conftest import EXAMPLES, example, example_bytes


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


class TestExamples:
    """The three constructed bodies of contract §9 validate and dump back unchanged."""

    def test_validates_and_dumps_back(self, example_name: str) -> None:
        route, _ = EXAMPLES[example_name]
        model = ENVELOPES[route]
        envelope = model.model_validate_json(example_bytes(example_name))
        dumped = envelope.model_dump(mode="json", exclude_unset=True)
        assert dumped == example(example_name)

    def test_typed_access(self) -> None:
        order = OrderWebhook.model_validate(example("order"))
        assert order.order_event is not None
        line = order.order_event.lines[0]  # type: ignore[index]
        assert line.buyer_line is not None and line.buyer_line.position == "0001"
        assert line.supplier_line is not None and line.supplier_line.sales_order_position == "10"
        assert line.status is not None and line.status.process_status == ProcessStatus.CONFIRMED
        assert line.prices is not None and line.prices.net_price is not None
        amount = line.prices.net_price.price_in_transaction_currency
        assert amount is not None and amount.value == Decimal("18.75")
        single = OrderWebhook.model_validate(example("single_delivery"))
        sline = single.event.lines[0]  # type: ignore[index]
        assert sline.status.in_progress_status == InProgressStatus.OPEN_SUPPLIER_PROPOSAL  # type: ignore[union-attr]
        assert sline.status_line.scheduled_delivery_incl_requests.date == "2025-06-20"  # type: ignore[union-attr]

    def test_field_order_is_irrelevant(self, example_name: str) -> None:
        route, _ = EXAMPLES[example_name]
        model = ENVELOPES[route]
        data = example(example_name)
        reordered = _shuffled(data, random.Random(7))
        assert list(reordered) != list(data) or len(data) < 3
        a = model.model_validate(data)
        b = model.model_validate_json(json.dumps(reordered))
        assert a.model_dump() == b.model_dump()


class TestForwardCompatibility:
    """Unknown fields, enum values and event names are accepted and kept."""

    def test_unknown_fields_kept_everywhere(self) -> None:
        data = example("order")
        data["newTopLevel"] = {"x": [1, 2]}
        data["orderEvent"]["newHeaderField"] = "h"
        data["orderEvent"]["lines"][0]["buyerLine"]["item"]["colour"] = "red"
        data["orderEvent"]["lines"][0]["deliverySchedule"][0]["dockDoor"] = 4
        envelope = OrderWebhook.model_validate(data)
        assert envelope.model_extra == {"newTopLevel": {"x": [1, 2]}}
        item = envelope.order_event.lines[0].buyer_line.item  # type: ignore[union-attr,index]
        assert item.model_extra == {"colour": "red"}  # type: ignore[union-attr]
        assert envelope.model_dump(mode="json", exclude_unset=True) == data

    def test_unknown_enum_values_accepted(self) -> None:
        data = example("order")
        line = data["orderEvent"]["lines"][0]
        line["status"] = {"processStatus": "Teleported", "inProgressStatus": "Pondering",
                          "logisticsStatus": "InOrbit"}
        line["lineType"] = "Subscription"
        line["deliverySchedule"][0]["status"] = "Lost"
        data["orderEvent"]["buyerOrder"]["orderType"] = "Consignment"
        envelope = OrderWebhook.model_validate(data)
        parsed = envelope.order_event.lines[0]  # type: ignore[union-attr,index]
        assert parsed.status.process_status == "Teleported"  # type: ignore[union-attr]
        assert parsed.line_type == "Subscription"
        shipment = example("shipment")
        shipment["shipment"]["status"]["processStatus"] = "Held"
        shipment["shipment"]["locations"]["departure"]["location"]["locationType"] = "Moon"
        assert ShipmentWebhook.model_validate(shipment).event.effective_process_status == "Held"

    def test_unknown_event_name_accepted(self) -> None:
        data = example("order")
        data["eventName"] = "OrderLinesTeleportedByBuyer"
        assert OrderWebhook.model_validate(data).event_name == "OrderLinesTeleportedByBuyer"

    def test_null_for_optional_fields(self) -> None:
        data = example("order")
        data["orderEvent"]["buyerOrder"]["notes"] = None
        data["orderEvent"]["lines"][0]["prices"] = None
        event = OrderWebhook.model_validate(data).order_event
        assert event is not None
        assert event.buyer_order is not None and event.buyer_order.notes is None
        assert event.lines[0].prices is None
        assert event.lines[1].prices is not None  # only the nulled line lost its prices


class TestNamingVariants:
    """The variants of contract §10 are read into one attribute and written back as current."""

    @pytest.mark.parametrize("key", ["salesOrderPosition", "salesOrderLinePosition", "position"])
    def test_sales_order_position(self, key: str) -> None:
        data = example("order")
        supplier_line = data["orderEvent"]["lines"][0]["supplierLine"]
        del supplier_line["salesOrderPosition"]
        supplier_line[key] = "10"
        envelope = OrderWebhook.model_validate(data)
        parsed = envelope.order_event.lines[0].supplier_line  # type: ignore[union-attr,index]
        assert parsed.sales_order_position == "10"  # type: ignore[union-attr]
        assert parsed.model_dump(exclude_unset=True)["salesOrderPosition"] == "10"  # type: ignore[union-attr]

    def test_both_variants_keep_the_second_as_extra(self) -> None:
        data = example("order")
        data["orderEvent"]["lines"][0]["supplierLine"]["salesOrderLinePosition"] = "99"
        envelope = OrderWebhook.model_validate(data)
        parsed = envelope.order_event.lines[0].supplier_line  # type: ignore[union-attr,index]
        assert parsed.sales_order_position == "10"  # type: ignore[union-attr]
        assert parsed.model_extra == {"salesOrderLinePosition": "99"}  # type: ignore[union-attr]

    @pytest.mark.parametrize("key", ["countryCodeIso", "countryCodeIso2"])
    def test_location_country(self, key: str) -> None:
        data = example("shipment")
        location = data["shipment"]["locations"]["departure"]["location"]
        del location["countryCodeIso"]
        location[key] = "DE"
        shipment = ShipmentWebhook.model_validate(data).event
        assert shipment.locations.departure.location.country_code_iso == "DE"  # type: ignore[union-attr]

    def test_party_country_either_spelling(self) -> None:
        data = example("shipment")
        data["shipment"]["supplierShipment"]["supplierParty"]["countryCodeIso"] = "DE"
        shipment = ShipmentWebhook.model_validate(data).event
        assert shipment.supplier_shipment.supplier_party.country_code_iso2 == "DE"  # type: ignore[union-attr]

    def test_including_and_incl_requests(self) -> None:
        data = example("order")
        line = data["orderEvent"]["lines"][0]
        line["deliveryScheduleInclRequests"] = line.pop("deliveryScheduleIncludingRequests")
        line["pricesInclRequests"] = line.pop("pricesIncludingRequests")
        parsed = OrderWebhook.model_validate(data).order_event.lines[0]  # type: ignore[union-attr,index]
        assert parsed.delivery_schedule_including_requests[1].quantity == 40  # type: ignore[index]
        assert parsed.prices_including_requests is not None
        single = example("single_delivery")
        status_line = single["singleDeliveryOrderEvent"]["lines"][0]["statusLine"]
        status_line["deliveryScheduleInclRequests"] = status_line.pop("scheduledDeliveryInclRequests")
        status_line["pricesIncludingRequests"] = status_line.pop("pricesInclRequests")
        sline = OrderWebhook.model_validate(single).event.lines[0].status_line  # type: ignore[index,union-attr]
        assert sline.scheduled_delivery_incl_requests.date == "2025-06-20"  # type: ignore[union-attr]
        assert sline.prices_incl_requests is not None  # type: ignore[union-attr]

    def test_flat_shipment_status(self) -> None:
        data = example("shipment")
        del data["shipment"]["status"]
        data["shipment"]["processStatus"] = "Rejected"
        data["shipment"]["processStatusReason"] = "wrong dock"
        shipment = ShipmentWebhook.model_validate(data).event
        assert shipment.effective_process_status == "Rejected"
        assert shipment.effective_process_status_reason == "wrong dock"

    def test_nested_status_wins(self) -> None:
        data = example("shipment")
        data["shipment"]["processStatus"] = "Rejected"
        assert ShipmentWebhook.model_validate(data).event.effective_process_status == "Issued"

    def test_meta_inside_or_outside(self) -> None:
        data = example("single_delivery")
        assert "meta" not in data
        envelope = OrderWebhook.model_validate(data)
        assert envelope.meta is None
        assert envelope.event.meta.message_id == "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"  # type: ignore[union-attr]


class TestShapes:
    """A known field of the wrong shape is an error naming the field."""

    @pytest.mark.parametrize(
        ("mutate", "where"),
        [
            (lambda d: d.__setitem__("orderEvent", "text"), "orderEvent"),
            (lambda d: d["orderEvent"].__setitem__("lines", {"id": "x"}), "orderEvent.lines"),
            (lambda d: d["orderEvent"]["lines"][0]["deliverySchedule"][0].__setitem__("quantity", "many"),
             "orderEvent.lines.0.deliverySchedule.0.quantity"),
            (lambda d: d["orderEvent"].__setitem__("version", "three"), "orderEvent.version"),
            (lambda d: d["orderEvent"]["indicators"].__setitem__("deliveryOverdue", "maybe"),
             "orderEvent.indicators.deliveryOverdue"),
            (lambda d: d["orderEvent"]["buyerOrder"].__setitem__("notes", "n"), "orderEvent.buyerOrder.notes"),
            (lambda d: d["orderEvent"]["buyerOrder"].__setitem__("purchaseOrderNumber", {"a": 1}),
             "orderEvent.buyerOrder.purchaseOrderNumber"),
            (lambda d: d["orderEvent"].__setitem__("orderId", True), "orderEvent.orderId"),
        ],
    )
    def test_wrong_shape(self, mutate: Any, where: str) -> None:
        data = example("order")
        mutate(data)
        with pytest.raises(ValidationError) as info:
            OrderWebhook.model_validate(data)
        locs = [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]
        assert where in locs

    def test_number_where_string_expected_becomes_text(self) -> None:
        data = example("order")
        data["orderEvent"]["lines"][0]["buyerLine"]["position"] = 1
        data["orderEvent"]["version"] = 3
        envelope = OrderWebhook.model_validate(data)
        assert envelope.order_event.lines[0].buyer_line.position == "1"  # type: ignore[union-attr,index]

    def test_event_name_must_be_text(self) -> None:
        data = example("order")
        data["eventName"] = 12
        with pytest.raises(ValidationError):
            OrderWebhook.model_validate(data)
        data["eventName"] = ""
        with pytest.raises(ValidationError):
            OrderWebhook.model_validate(data)


class TestSerialisation:
    """Decimals and ids come back out as they went in."""

    def test_decimals_are_json_numbers(self) -> None:
        envelope = OrderWebhook.model_validate_json(example_bytes("order"))
        out = json.loads(envelope.model_dump_json(exclude_unset=True))
        prices = out["orderEvent"]["lines"][1]["confirmedLine"]["prices"]
        assert prices["discountPercentage"] == 10
        assert prices["grossPrice"]["priceInTransactionCurrency"]["value"] == 0.8

    def test_all_lines_of_a_shipment(self) -> None:
        shipment: Shipment = ShipmentWebhook.model_validate(example("shipment")).event
        positions = sorted(ln.purchase_order_line_position or "" for ln in shipment.all_lines)
        assert positions == ["0001", "0002"]

    def test_models_are_frozen(self) -> None:
        envelope = OrderWebhook.model_validate(example("order"))
        with pytest.raises(ValidationError):
            envelope.event_name = "x"  # type: ignore[misc]
