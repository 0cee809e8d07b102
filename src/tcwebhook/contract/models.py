"""Typed models of Tradecloud webhook bodies (contract §3, §5), forward compatible by design.

Rules every model follows (contract §8):

* Unknown fields are accepted and kept (``model_extra``; ``model_dump()`` returns them).
* Enumerations are plain strings; the known values live in ``contract.enums`` and in the JSON
  schema (``examples``). An unknown value is accepted as is.
* Field order is irrelevant; every field is optional, so a missing one is ``None`` — Tradecloud
  only promises the fields it sends, and order events carry only the affected lines.
* Naming variants of §10 are read into one attribute and written back under the current name:
  ``salesOrderPosition`` / ``salesOrderLinePosition`` / ``position``, ``countryCodeIso`` /
  ``countryCodeIso2``, ``…InclRequests`` / ``…IncludingRequests``.
* A known field of the wrong shape (an object that is a list, a quantity that is not a number)
  fails validation: that body is not what the contract describes.
* Identifiers are strings and keep leading zeros. A JSON number where a string is expected is
  converted to its decimal text (``1`` -> ``"1"``): it carries no leading zeros to lose, and
  refusing it would make Tradecloud drop the event for good (4xx is never retried).
  Booleans, objects and arrays in a string field are errors.
* Dates and times are kept as the text received (the sources disagree on zones, §10 #8).
* Decimals are exact ``Decimal`` (from JSON and tXML alike); ``model_dump()`` writes whole
  numbers back as ``int``, others as ``Decimal``.
* Every documented flag is declared as a ``bool`` so a tXML ``false`` is ``False``, never the
  truthy text ``"false"``.

Attribute names are snake_case; the wire names are the aliases (``model_dump()`` and
``model_dump_json()`` use them). Validate with ``Model.model_validate(...)`` or
``model_validate_json(...)`` using wire names.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from tcwebhook.contract import enums
from tcwebhook.contract.drift import NumberText, OpenEnum, TextNumber, Unknown
from tcwebhook.contract.names import ORDER_BODY_KEYS, SHIPMENT_BODY_KEYS

# -- scalar vocabulary (contract §0) -------------------------------------------------------------


def _number_out(value: Decimal, info: SerializationInfo) -> int | Decimal | float:
    if value.is_finite() and value == value.to_integral_value():
        return int(value)  # 100, also for 100.0 and 1E+2: quantities are counted in whole units
    if info.mode_is_json():
        return float(value)
    return Decimal(value) if type(value) is TextNumber else value  # the mark is for the report only


# Far beyond any quantity or price; int() of 1E+400000000 (a whole number, written back as an int)
# would take minutes of CPU and a gigabyte, so such a number is refused when it arrives.
MAX_NUMBER_EXPONENT = 1000


def _number_in(value: Decimal) -> Decimal:
    # Runs for every number of every body: the usual case returns after two C calls.
    if -MAX_NUMBER_EXPONENT <= value.adjusted() <= MAX_NUMBER_EXPONENT and value.is_finite():
        return value
    raise PydanticCustomError(
        "number_out_of_range",
        "number is out of range (its exponent is beyond ±{limit})",
        {"limit": MAX_NUMBER_EXPONENT},
    )


Num = Annotated[
    Decimal,
    NumberText(),  # "10" is read as 10, as pydantic reads it, and named in the drift report
    AfterValidator(_number_in),
    PlainSerializer(_number_out, return_type=Any),
    WithJsonSchema({"type": "number"}),
]
"""A JSON number (``decimal`` in the contract), exact as received on both paths.

``model_dump()`` gives whole numbers as ``int`` and the others as the exact ``Decimal``;
``model_dump_json()`` writes the others as JSON floats (JSON output cannot say more).
"""

# No "format": a date is kept as the text received and never checked, so the schema claims no more.
DateText = Annotated[
    str, WithJsonSchema({"type": "string", "description": "Date, normally YYYY-MM-DD (kept as received)",
                         "examples": ["2025-06-10"]})
]
DateTimeText = Annotated[
    str,
    WithJsonSchema({
        "type": "string",
        "description": "ISO 8601 date-time, normally with zone (kept as received)",
        "examples": ["2025-05-02T08:15:29.987Z"],
    }),
]
LocalDateTimeText = Annotated[
    str, WithJsonSchema({"type": "string", "examples": ["2025-06-10T08:35:00"]})
]
LocalTimeText = Annotated[str, WithJsonSchema({"type": "string", "examples": ["08:00:00"]})]


def _open_enum(values: type[StrEnum]) -> WithJsonSchema:
    known = [v.value for v in values]
    return WithJsonSchema({
        "type": "string",
        "description": f"Known values: {', '.join(known)}. Other values may appear.",
        "examples": known,
    })


def _known(values: type[StrEnum]) -> OpenEnum:
    # Before the JSON schema in each ``Annotated``: that describes the whole field, not a member.
    return OpenEnum(frozenset(v.value for v in values))


ProcessStatusText = Annotated[str, _known(enums.ProcessStatus), _open_enum(enums.ProcessStatus)]
LogisticsStatusText = Annotated[str, _known(enums.LogisticsStatus), _open_enum(enums.LogisticsStatus)]
InProgressStatusText = Annotated[str, _known(enums.InProgressStatus), _open_enum(enums.InProgressStatus)]
ScheduledDeliveryStatusText = Annotated[
    str, _known(enums.ScheduledDeliveryStatus), _open_enum(enums.ScheduledDeliveryStatus)
]
RequestStatusText = Annotated[str, _known(enums.RequestStatus), _open_enum(enums.RequestStatus)]
LineTypeText = Annotated[str, _known(enums.LineType), _open_enum(enums.LineType)]
OrderTypeText = Annotated[str, _known(enums.OrderType), _open_enum(enums.OrderType)]
ShipmentProcessStatusText = Annotated[
    str, _known(enums.ShipmentProcessStatus), _open_enum(enums.ShipmentProcessStatus)
]
LocationTypeText = Annotated[str, _known(enums.LocationType), _open_enum(enums.LocationType)]

# Event names are free text too, but never a number or empty.
EventNameText = Annotated[
    str,
    Field(min_length=1, strict=True, examples=["OrderLinesAcceptedBySupplier"]),
]


_T = TypeVar("_T")

# Stop at the first bad item: a body with a million wrong items must not build a million errors.
Items = Annotated[list[_T], Field(fail_fast=True)]


def _variants(*names: str) -> Any:
    """Read any of ``names`` (first one is current); write the first."""
    return Field(
        default=None,
        validation_alias=AliasChoices(*names),
        serialization_alias=names[0],
    )


class TradecloudModel(BaseModel):
    """Base of every contract model: lenient about additions, strict about shapes."""

    model_config = ConfigDict(
        extra="allow",
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        coerce_numbers_to_str=True,
        frozen=True,
    )
    # Extra fields are kept as they came; their type notes for the drift walk that one came.
    __pydantic_extra__: dict[str, Unknown] = Field(init=False)


# -- shared parts --------------------------------------------------------------------------------


class MessageSource(TradecloudModel):
    trace_id: str | None = None
    user_id: str | None = None
    company_id: str | None = None
    origin: str | None = None


class MessageMeta(TradecloudModel):
    """``meta`` of a message (§3.7); ``messageId`` is the de-duplication key."""

    message_id: str | None = None
    source: MessageSource | None = None
    created_date_time: DateTimeText | None = None


class Property(TradecloudModel):
    key: str | None = None
    value: str | None = None


class Contact(TradecloudModel):
    user_id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    position: str | None = None
    phone_number: str | None = None


class Party(TradecloudModel):
    id: str | None = None
    id_scheme: str | None = None
    names: Items[str] | None = None
    address_lines: Items[str] | None = None
    postal_code: str | None = None
    city: str | None = None
    country_code_iso2: str | None = _variants("countryCodeIso2", "countryCodeIso")
    country_name: str | None = None


class OrderDestination(TradecloudModel):
    code: str | None = None
    names: Items[str] | None = None
    address_lines: Items[str] | None = None
    postal_code: str | None = None
    city: str | None = None
    country_code_iso2: str | None = _variants("countryCodeIso2", "countryCodeIso")
    country_name: str | None = None
    location_type: str | None = None


class Terms(TradecloudModel):
    incoterms_code: str | None = None
    incoterms: str | None = None
    payment_terms_code: str | None = None
    payment_terms: str | None = None


class DocumentMeta(TradecloudModel):
    last_updated_at: DateTimeText | None = None


class Document(TradecloudModel):
    """Document metadata; ``objectId`` points to object storage, ``url`` to a partner server."""

    code: str | None = None
    revision: str | None = None
    name: str | None = None
    description: str | None = None
    type: str | None = Field(default=None, examples=["General", "Invoice", "Packing List"])
    object_id: str | None = None
    url: str | None = None
    meta: DocumentMeta | None = None
    last_updated_at: DateTimeText | None = None  # the current shipment page lists it beside meta


class Amount(TradecloudModel):
    value: Num | None = None
    currency_iso: str | None = None


class Price(TradecloudModel):
    price_in_transaction_currency: Amount | None = None
    price_in_base_currency: Amount | None = None


class Prices(TradecloudModel):
    """Read ``netPrice``, or else ``grossPrice`` with ``discountPercentage``."""

    gross_price: Price | None = None
    discount_percentage: Num | None = None
    net_price: Price | None = None
    price_unit_of_measure_iso: str | None = None
    price_unit_quantity: Num | None = None


class ChargeLine(TradecloudModel):
    """Deprecated in favour of ``lineType = Charge``."""

    position: str | None = None
    charge_type_code: str | None = None
    charge_description: str | None = None
    quantity: Num | None = None
    price: Price | None = None
    price_unit_of_measure_iso: str | None = None


class ScheduledDelivery(TradecloudModel):
    """The one delivery of a single-delivery line (``statusLine.scheduledDelivery``)."""

    date: DateText | None = None
    quantity: Num | None = None
    status: ScheduledDeliveryStatusText | None = None
    etd: DateText | None = None
    eta: DateText | None = None
    transport_mode: str | None = None


class DeliveryLine(ScheduledDelivery):
    """One position of a delivery schedule; ``position`` may be empty after a supplier split."""

    position: str | None = None


class DeliveryHistoryLine(TradecloudModel):
    position: str | None = None
    date: DateText | None = None
    quantity: Num | None = None


class Dimension(TradecloudModel):
    attribute: str | None = None
    measure: Num | None = None
    unit_of_measure_unece: str | None = None


class Item(TradecloudModel):
    number: str | None = None
    revision: str | None = None
    name: str | None = None
    description: str | None = None
    purchase_unit_of_measure_iso: str | None = None
    supplier_item_number: str | None = None
    dimensions: Items[Dimension] | None = None


class ItemDetails(TradecloudModel):
    country_of_origin_code_iso2: str | None = None
    combined_nomenclature_code: str | None = None
    net_weight: Num | None = None
    net_weight_unit_of_measure_iso: str | None = None
    dangerous_goods_code_unece: str | None = None
    serial_number: str | None = None
    batch_number: str | None = None


class Request(TradecloudModel):
    """A supplier proposal or a reopen request."""

    delivery_schedule: Items[DeliveryLine] | None = None
    prices: Prices | None = None
    charge_lines: Items[ChargeLine] | None = None
    reason: str | None = None
    status: RequestStatusText | None = None


class LineRequests(TradecloudModel):
    proposal: Request | None = None
    reopen_request: Request | None = None


class LineTerms(TradecloudModel):
    contract_number: str | None = None
    contract_position: str | None = None


class Certification(TradecloudModel):
    type_code: str | None = None
    type: str | None = None
    classification_society_code: str | None = None
    classification_society: str | None = None


class BuyerLineIndicators(TradecloudModel):
    """The buyer's line indicators (order/buyer/issue/indicators.md); lines overrule the order."""

    confirmed: bool | None = None
    request_reconfirmation: bool | None = None
    shipped: bool | None = None
    delivered: bool | None = None
    completed: bool | None = None
    cancelled: bool | None = None
    no_delivery_expected: bool | None = None
    propose_when_accepted: bool | None = None


class SupplierIndicators(TradecloudModel):
    """The supplier's order and line indicators, as in its order response."""

    accepted: bool | None = None
    rejected: bool | None = None
    shipped: bool | None = None
    delivered: bool | None = None
    cancelled: bool | None = None


class BuyerLine(TradecloudModel):
    """The buyer's order line as sent (``position`` keeps leading zeros)."""

    position: str | None = None
    original_position: str | None = None  # single delivery: set on lines split by the supplier
    row: str | None = None
    description: str | None = None
    item: Item | None = None
    item_details: ItemDetails | None = None
    delivery_schedule: Items[DeliveryLine] | None = None
    delivery_history: Items[DeliveryHistoryLine] | None = None
    actual_delivery: DeliveryHistoryLine | None = None
    prices: Prices | None = None
    charge_lines: Items[ChargeLine] | None = None
    requests: LineRequests | None = None
    terms: LineTerms | None = None
    project_number: str | None = None
    production_number: str | None = None
    sales_order_number: str | None = None
    indicators: BuyerLineIndicators | None = None
    properties: Items[Property] | None = None
    notes: Items[str] | None = None
    labels: Items[str] | None = None
    documents: Items[Document] | None = None
    reason: str | None = None
    certification: Certification | None = None


class SupplierLine(TradecloudModel):
    sales_order_number: str | None = None
    sales_order_position: str | None = _variants(
        "salesOrderPosition", "salesOrderLinePosition", "position"
    )
    description: str | None = None
    requests: LineRequests | None = None
    proposal: Request | None = None  # 2020 location of the supplier proposal
    indicators: SupplierIndicators | None = None
    item_details: ItemDetails | None = None
    properties: Items[Property] | None = None
    notes: Items[str] | None = None
    documents: Items[Document] | None = None
    reason: str | None = None


class ConfirmedLine(TradecloudModel):
    """Agreed values; binding only while the line is ``Confirmed``."""

    delivery_schedule: Items[DeliveryLine] | None = None
    prices: Prices | None = None
    charge_lines: Items[ChargeLine] | None = None


class LineIndicators(TradecloudModel):
    delivery_overdue: bool | None = None


class LineStatus(TradecloudModel):
    process_status: ProcessStatusText | None = None
    in_progress_status: InProgressStatusText | None = None
    logistics_status: LogisticsStatusText | None = None
    delivery_line_status: str | None = None  # named in the polling guide only; values unknown


class OrderLineBase(TradecloudModel):
    id: str | None = None
    line_type: LineTypeText | None = None
    charge_reason_code: str | None = None
    buyer_line: BuyerLine | None = None
    supplier_line: SupplierLine | None = None
    confirmed_line: ConfirmedLine | None = None
    indicators: LineIndicators | None = None
    status: LineStatus | None = None
    event_dates: dict[str, Any] | None = None
    merged_item_details: ItemDetails | None = None
    last_updated_at: DateTimeText | None = None
    reason: str | None = None
    portal_url: str | None = None


class OrderEventLine(OrderLineBase):
    """A line of ``orderEvent`` (delivery-schedule mode)."""

    delivery_schedule: Items[DeliveryLine] | None = None
    delivery_schedule_including_requests: Items[DeliveryLine] | None = _variants(
        "deliveryScheduleIncludingRequests", "deliveryScheduleInclRequests"
    )
    prices: Prices | None = None
    prices_including_requests: Prices | None = _variants(
        "pricesIncludingRequests", "pricesInclRequests"
    )


class StatusLine(TradecloudModel):
    scheduled_delivery: ScheduledDelivery | None = None
    scheduled_delivery_incl_requests: ScheduledDelivery | None = _variants(
        "scheduledDeliveryInclRequests",
        "scheduledDeliveryIncludingRequests",
        "deliveryScheduleInclRequests",
    )
    prices: Prices | None = None
    prices_incl_requests: Prices | None = _variants(
        "pricesInclRequests", "pricesIncludingRequests"
    )


class SingleDeliveryLine(OrderLineBase):
    """A line of ``singleDeliveryOrderEvent`` (or legacy ``simpleOrderEvent``)."""

    status_line: StatusLine | None = None
    # Sep 2023 - Jan 2024 simpleOrderEvent: both sat on the line and already included requests.
    scheduled_delivery: ScheduledDelivery | None = None
    prices: Prices | None = None


# -- order header --------------------------------------------------------------------------------


class BuyerOrderIndicators(TradecloudModel):
    confirmed: bool | None = None
    request_reconfirmation: bool | None = None
    shipped: bool | None = None
    delivered: bool | None = None
    completed: bool | None = None
    cancelled: bool | None = None
    cancel_line_when_missing: bool | None = None
    auto_confirm: bool | None = None


class BuyerOrder(TradecloudModel):
    company_id: str | None = None
    purchase_order_number: str | None = None
    supplier_account_number: str | None = None
    description: str | None = None
    contact: Contact | None = None
    supplier_contact: Contact | None = None
    properties: Items[Property] | None = None
    notes: Items[str] | None = None
    labels: Items[str] | None = None
    documents: Items[Document] | None = None
    order_type: OrderTypeText | None = None
    buyer_party: Party | None = None
    buyer_accounting_party: Party | None = None
    supplier_party: Party | None = None
    destination: OrderDestination | None = None
    terms: Terms | None = None
    indicators: BuyerOrderIndicators | None = None


class SupplierOrder(TradecloudModel):
    company_id: str | None = None
    buyer_account_number: str | None = None
    sales_order_number: str | None = None
    description: str | None = None
    contact: Contact | None = None
    indicators: SupplierIndicators | None = None
    properties: Items[Property] | None = None
    notes: Items[str] | None = None
    documents: Items[Document] | None = None


class OrderIndicators(TradecloudModel):
    delivery_overdue: bool | None = None


class OrderStatus(TradecloudModel):
    process_status: ProcessStatusText | None = None
    logistics_status: LogisticsStatusText | None = None


class OrderEventBase(TradecloudModel):
    """Header fields shared by both order event shapes."""

    order_id: str | None = None
    buyer_order: BuyerOrder | None = None
    supplier_order: SupplierOrder | None = None
    indicators: OrderIndicators | None = None
    status: OrderStatus | None = None
    version: int | None = None
    event_dates: dict[str, Any] | None = None
    meta: MessageMeta | None = None
    last_updated_at: DateTimeText | None = None
    reason: str | None = None
    portal_url: str | None = None


class OrderEvent(OrderEventBase):
    """``orderEvent``: the affected lines with their delivery schedules."""

    lines: Items[OrderEventLine] | None = None


class SingleDeliveryOrderEvent(OrderEventBase):
    """``singleDeliveryOrderEvent``: one delivery per line."""

    lines: Items[SingleDeliveryLine] | None = None


class SimpleOrderEvent(SingleDeliveryOrderEvent):
    """Legacy ``simpleOrderEvent`` (Sep 2023 - Apr 2024), the former single-delivery event."""


class DocumentsOrder(TradecloudModel):
    purchase_order_number: str | None = None
    supplier_account_number: str | None = None
    documents: Items[Document] | None = None


class DocumentsLine(TradecloudModel):
    id: str | None = None
    position: str | None = None
    buyer_line: BuyerLine | None = None
    supplier_line: SupplierLine | None = None
    documents: Items[Document] | None = None


class OrderDocumentsEvent(TradecloudModel):
    """``orderDocumentsEvent``. Its fields are not published; these are inferred (§3.6)."""

    order_id: str | None = None
    buyer_order: BuyerOrder | None = None
    supplier_order: SupplierOrder | None = None
    order: DocumentsOrder | None = None
    lines: Items[DocumentsLine] | None = None
    documents: Items[Document] | None = None
    meta: MessageMeta | None = None
    last_updated_at: DateTimeText | None = None


# -- shipment ------------------------------------------------------------------------------------


class ShipmentIdentifiers(TradecloudModel):
    bill_of_lading_number: str | None = None
    imo_number: str | None = None
    carrier_shipment_number: str | None = None
    tracking_number: str | None = None
    bill_of_lading_issue_date: DateText | None = None


class SupplierShipment(TradecloudModel):
    company_id: str | None = None
    supplier_party: Party | None = None
    buyer_account_number: str | None = None
    shipment_number: str | None = None
    invoice_numbers: Items[str] | None = None
    documents: Items[Document] | None = None
    contacts: Items[Contact] | None = None


class BuyerShipment(TradecloudModel):
    company_id: str | None = None
    buyer_party: Party | None = None
    supplier_account_number: str | None = None
    documents: Items[Document] | None = None
    contacts: Items[Contact] | None = None
    purchase_order_terms: Terms | None = None


class ShipmentItem(TradecloudModel):
    buyer_item_number: str | None = None
    buyer_item_revision: str | None = None
    buyer_item_name: str | None = None
    supplier_item_number: str | None = None
    supplier_item_revision: str | None = None
    supplier_item_name: str | None = None
    purchase_unit_of_measure_iso: str | None = None


class ShipmentSupplierLine(TradecloudModel):
    despatch_advice_number: str | None = None
    despatch_advice_line_position: str | None = None
    despatch_quantity: Num | None = None
    backorder_quantity: Num | None = None
    backorder_date: DateText | None = None


class SupplierErpMeta(TradecloudModel):
    despatch_advice_erp_issue_date_time: LocalDateTimeText | None = None


class ShipmentLineMeta(TradecloudModel):
    last_updated_at: DateTimeText | None = None
    supplier_erp_meta: SupplierErpMeta | None = None  # 2021-2022 position


class ShipmentLine(TradecloudModel):
    purchase_order_number: str | None = None
    purchase_order_line_position: str | None = None
    delivery_schedule_position: str | None = None
    item: ShipmentItem | None = None
    supplier_line: ShipmentSupplierLine | None = None
    meta: ShipmentLineMeta | None = None


class LoadCarrier(TradecloudModel):
    """A container (``containerNumber``…) or a package (``packageSSCC``…)."""

    container_number: str | None = None
    container_size_and_type: str | None = None
    package_sscc: str | None = Field(default=None, alias="packageSSCC")
    package_type: str | None = None
    lines: Items[ShipmentLine] | None = None


class Location(TradecloudModel):
    location_type: LocationTypeText | None = None
    id: str | None = None
    id_scheme: str | None = None
    names: Items[str] | None = None
    address_lines: Items[str] | None = None
    postal_code: str | None = None
    city: str | None = None
    country_code_iso: str | None = _variants("countryCodeIso", "countryCodeIso2")


class Departure(TradecloudModel):
    location: Location | None = None
    etd_date: DateText | None = None
    atd_date: DateText | None = None
    actual_date: DateText | None = None  # 2021-2022 shape


class ShipmentDestination(TradecloudModel):
    location: Location | None = None
    eta_start_date: DateText | None = None
    eta_start_time: LocalTimeText | None = None
    eta_end_date: DateText | None = None
    eta_end_time: LocalTimeText | None = None
    ata_date: DateText | None = None
    etd_date: DateText | None = None
    atd_date: DateText | None = None
    # 2021-2022 shape
    scheduled_start_date: DateText | None = None
    scheduled_start_time: LocalTimeText | None = None
    scheduled_end_date: DateText | None = None
    scheduled_end_time: LocalTimeText | None = None


class ShipmentLocations(TradecloudModel):
    departure: Departure | None = None
    destinations: Items[ShipmentDestination] | None = None
    destination: ShipmentDestination | None = None  # 2021-2022 shape
    final_destination: ShipmentDestination | None = None  # 2021-2022 shape


class ShipmentStatus(TradecloudModel):
    process_status: ShipmentProcessStatusText | None = None
    process_status_reason: str | None = None


class ShipmentMeta(MessageMeta):
    last_updated_at: DateTimeText | None = None
    supplier_erp_meta: SupplierErpMeta | None = None


class Shipment(TradecloudModel):
    """The complete current shipment (every event carries all of it)."""

    id: str | None = None
    identifiers: ShipmentIdentifiers | None = None
    transport_mode: str | None = None
    supplier_shipment: SupplierShipment | None = None
    buyer_shipment: BuyerShipment | None = None
    load_carriers: Items[LoadCarrier] | None = None
    lines: Items[ShipmentLine] | None = None
    locations: ShipmentLocations | None = None
    status: ShipmentStatus | None = None
    # The current docs render these beside ``status``; older ones nest them inside it.
    process_status: ShipmentProcessStatusText | None = None
    process_status_reason: str | None = None
    tracking_number: str | None = None  # 2021 position, later identifiers.trackingNumber
    meta: ShipmentMeta | None = None

    @property
    def effective_process_status(self) -> str | None:
        """``status.processStatus``, else the flat ``processStatus``."""
        if self.status is not None and self.status.process_status is not None:
            return self.status.process_status
        return self.process_status

    @property
    def effective_process_status_reason(self) -> str | None:
        if self.status is not None and self.status.process_status_reason is not None:
            return self.status.process_status_reason
        return self.process_status_reason

    @property
    def all_lines(self) -> list[ShipmentLine]:
        """Loose lines and the lines inside load carriers."""
        out = list(self.lines or ())
        for carrier in self.load_carriers or ():
            out.extend(carrier.lines or ())
        return out


# -- envelopes -----------------------------------------------------------------------------------

_OTHER_FAMILY = {
    "orders": SHIPMENT_BODY_KEYS,
    "shipments": ORDER_BODY_KEYS,
}


@functools.cache
def _event_fields(model: type[BaseModel], keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(field name, body key) of the envelope's event objects: worked out once per envelope class."""
    found = []
    for name, info in model.model_fields.items():
        key = info.serialization_alias or info.alias or name
        if key in keys:
            found.append((name, key))
    return tuple(found)


def _check_single_event(model: BaseModel, keys: tuple[str, ...], route: str) -> str:
    """Return the one event key present; raise a validation error naming what is wrong."""
    extra = model.model_extra or {}
    foreign = [k for k in _OTHER_FAMILY[route] if k in extra]
    if foreign:
        other = "shipments" if route == "orders" else "orders"
        raise PydanticCustomError(
            "wrong_route",
            "'{key}' is an event object of the {other} webhook, not of the {route} webhook",
            {"key": foreign[0], "other": other, "route": route},
        )
    present: list[str] = []
    for name, key in _event_fields(type(model), keys):
        if name not in model.model_fields_set:
            continue
        if getattr(model, name) is None:
            raise PydanticCustomError(
                "null_event", "'{key}' must be an object, not null", {"key": key}
            )
        present.append(key)
    if not present:
        raise PydanticCustomError(
            "no_event",
            "no event object: expected one of {keys}",
            {"keys": ", ".join(keys)},
        )
    if len(present) > 1:
        raise PydanticCustomError(
            "several_events",
            "more than one event object: {keys}",
            {"keys": ", ".join(present)},
        )
    return present[0]


class OrderWebhook(TradecloudModel):
    """Body of a POST to the order webhook: ``eventName``, exactly one event object, ``meta``."""

    event_name: EventNameText
    order_event: OrderEvent | None = None
    single_delivery_order_event: SingleDeliveryOrderEvent | None = None
    simple_order_event: SimpleOrderEvent | None = None
    order_documents_event: OrderDocumentsEvent | None = None
    meta: MessageMeta | None = None

    @model_validator(mode="after")
    def _one_event(self) -> OrderWebhook:
        _check_single_event(self, ORDER_BODY_KEYS, "orders")
        return self

    @property
    def body_key(self) -> str:
        """Which event key the body carried."""
        if self.order_event is not None:
            return "orderEvent"
        if self.single_delivery_order_event is not None:
            return "singleDeliveryOrderEvent"
        if self.simple_order_event is not None:
            return "simpleOrderEvent"
        return "orderDocumentsEvent"

    @property
    def event(self) -> OrderEvent | SingleDeliveryOrderEvent | OrderDocumentsEvent:
        """The event object, whichever key carried it."""
        event = (
            self.order_event
            or self.single_delivery_order_event
            or self.simple_order_event
            or self.order_documents_event
        )
        assert event is not None  # guaranteed by the validator
        return event


class ShipmentWebhook(TradecloudModel):
    """Body of a POST to the shipment webhook: ``eventName``, ``shipment``, ``meta``."""

    event_name: EventNameText
    shipment: Shipment | None = None
    shipment_event: Shipment | None = None  # mid-2023 docs' key for the same object
    meta: MessageMeta | None = None

    @model_validator(mode="after")
    def _one_event(self) -> ShipmentWebhook:
        _check_single_event(self, SHIPMENT_BODY_KEYS, "shipments")
        return self

    @property
    def body_key(self) -> str:
        return "shipment" if self.shipment is not None else "shipmentEvent"

    @property
    def event(self) -> Shipment:
        event = self.shipment or self.shipment_event
        assert event is not None  # guaranteed by the validator
        return event


class FetchNotification(TradecloudModel):
    """Stored form of a historic GET webhook call: only the id to fetch."""

    order_id: str | None = None
    legacy_order_id: str | None = None
    shipment_id: str | None = None

    @property
    def event(self) -> FetchNotification:
        return self


class UnknownWebhook(TradecloudModel):
    """A body whose event object none of the models knows: one Tradecloud added after this version.

    It is an envelope all the same: ``eventName`` and a ``meta`` object of the known shape, beside
    an object under a key of neither family (``body_key``); everything is kept as received.
    """

    event_name: EventNameText
    meta: MessageMeta

    @property
    def unknown_keys(self) -> tuple[str, ...]:
        """The keys beside ``eventName`` and ``meta`` that hold an object."""
        return tuple(k for k, v in (self.model_extra or {}).items() if isinstance(v, dict))

    @property
    def body_key(self) -> str:
        keys = self.unknown_keys
        return keys[0] if keys else ""

    @property
    def event(self) -> UnknownWebhook:
        return self


WebhookEnvelope = OrderWebhook | ShipmentWebhook | FetchNotification | UnknownWebhook
Route = Literal["orders", "shipments"]

ENVELOPES: dict[Route, type[OrderWebhook] | type[ShipmentWebhook]] = {
    "orders": OrderWebhook,
    "shipments": ShipmentWebhook,
}
