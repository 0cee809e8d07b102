"""Event names and body keys (contract §3.1, §4, §5).

The name lists are open (§8 rule 3): an unknown ``eventName`` is accepted and stored like any
other. These tables only say what is documented, which family a name belongs to, and which
current name replaced a historic one.
"""

from __future__ import annotations

from tcwebhook.contract.kinds import EventKind

ORDER_EVENT_NAMES: frozenset[str] = frozenset({
    # issued / updated by buyer
    "OrderIssuedByBuyer",
    "OrderLinesIssuedByBuyer",
    "OrderLinesReissuedByBuyer",
    "OrderLinesUpdatedByBuyer",
    # confirmation
    "OrderLinesAcceptedBySupplier",
    "OrderLinesRejectedBySupplier",
    "OrderLinesConfirmedByBuyer",
    "OrderLinesConfirmedBySupplier",
    # supplier proposal
    "OrderChangesProposedBySupplier",
    "OrderChangesProposalApprovedByBuyer",
    "OrderChangesProposalRejectedByBuyer",
    # updated by supplier
    "OrderLinesUpdatedBySupplier",
    # The settings API takes the long name; the docs' short one came from a table conversion that
    # dropped "BySupplier". Either may arrive: both are current.
    "OrderLinesItemDetailsChangedBySupplier",
    "OrderLinesItemDetailsChanged",
    # buyer reopen request
    "OrderLinesReopenRequestedByBuyer",
    "OrderLinesReopenRequestRevertedByBuyer",
    "OrderLinesReopenRequestApprovedBySupplier",
    "OrderLinesReopenRequestRejectedBySupplier",
    # supplier reopen request
    "OrderLinesReopenRequestedBySupplier",
    "OrderLinesReopenRequestRevertedBySupplier",
    "OrderLinesReopenRequestApprovedByBuyer",
    "OrderLinesReopenRequestRejectedByBuyer",
    # reconfirmation
    "OrderLinesReconfirmationRequestedByBuyer",
    "OrderLinesReconfirmedBySupplier",
    # cancellation
    "OrderLinesCancelledByBuyer",
    "CancelledOrderLinesRevertedByBuyer",
    # completion
    "OrderLinesCompletedByBuyer",
    "CompletedOrderLinesRevertedByBuyer",
    # logistics
    "OrderLinesMarkedAsOpenByBuyer",
    "OrderLinesMarkedAsOpenBySupplier",
    "OrderLinesShippedByBuyer",
    "OrderLinesMarkedAsDeliveredByBuyer",
    "OrderLinesMarkedAsDeliveredBySupplier",
    "OrderLinesDeliveryHistoryAppendedByBuyer",
    "OrderLinesDeliveryHistorySetByBuyer",
    "OrderLinesDeliveryScheduleLogisticsUpdatedByBuyer",
    "OrderLinesDeliveryScheduleLogisticsUpdatedBySupplier",
    # shipment reschedule
    "OrderLinesShipmentRescheduleRequestedBySupplier",
    "OrderLinesShipmentRescheduleApprovedByBuyer",
    "OrderLinesShipmentRescheduleRejectedByBuyer",
    # contacts
    "OrderContactReassignedByBuyer",
    "OrderContactReassignedBySupplier",
    # maintenance
    "OrderResentByBuyer",
    "OrderResentBySupplier",
})

ORDER_DOCUMENTS_EVENT_NAMES: frozenset[str] = frozenset({
    "OrderDocumentsAttachedByBuyer",
    "OrderDocumentsAttachedBySupplier",
})

SHIPMENT_EVENT_NAMES: frozenset[str] = frozenset({
    "ShipmentIssuedBySupplier",
    "ShipmentReissuedBySupplier",
    "ShipmentApprovedByBuyer",
    "ShipmentRejectedByBuyer",
    "ShipmentHeaderUpdatedBySupplier",
    "ShipmentDocumentAttachedByBuyer",
    "ShipmentDocumentAttachedBySupplier",
    "ShipmentResentByBuyer",
})

# Historic name -> the current name that replaced it (§4.4, §8).
RENAMED_EVENT_NAMES: dict[str, str] = {
    "ShipmentDespatchedBySupplier": "ShipmentIssuedBySupplier",
    "OrderReissuedByBuyer": "OrderLinesReissuedByBuyer",
    "OrderDocumentsAttachedBySupplie": "OrderDocumentsAttachedBySupplier",  # typo in 2021-2023 docs
}

# Accepted by the webhook settings API but absent from the event docs: known order events that
# ``connect`` subscribes only when ``[connect] enabled_event_names`` names them.
OPT_IN_ORDER_EVENT_NAMES: frozenset[str] = frozenset({
    "OrderCustomLabelsUpdatedByBuyer",
    "OrderCustomLabelsUpdatedBySupplier",
    "OrderSynced",
})

# A documented name the settings API does not take -> the one it takes (``connect`` sends that).
SUBSCRIPTION_NAMES: dict[str, str] = {
    "OrderLinesItemDetailsChanged": "OrderLinesItemDetailsChangedBySupplier",
}

# Seen in older docs or settings samples only, without a successor (§4.4).
HISTORIC_ORDER_EVENT_NAMES: frozenset[str] = frozenset({
    "OrderLinesCancelledBySupplier",
    "OrderLinesCancellationRequestedByBuyer",
    "OrderLinesCancellationRequestedBySupplier",
    "OrderLinesCancellationRequestApprovedByBuyer",
    "OrderLinesCancellationRequestApprovedBySupplier",
    "OrderLinesCancellationRequestRejectedByBuyer",
    "OrderLinesCancellationRequestRejectedBySupplier",
})

# Names the receiver gives to GET (fetch) notifications, which carry no eventName.
ORDER_FETCH_EVENT = "OrderFetchRequested"
SHIPMENT_FETCH_EVENT = "ShipmentFetchRequested"

# Body keys of the event object, per route, in the order they are looked for.
ORDER_BODY_KEYS: tuple[str, ...] = (
    "orderEvent",
    "singleDeliveryOrderEvent",
    "simpleOrderEvent",  # legacy name of singleDeliveryOrderEvent (Sep 2023 - Apr 2024)
    "orderDocumentsEvent",
)
SHIPMENT_BODY_KEYS: tuple[str, ...] = (
    "shipment",
    "shipmentEvent",  # mid-2023 docs' name for the same object
)

BODY_KEY_KINDS: dict[str, EventKind] = {
    "orderEvent": EventKind.ORDER,
    "singleDeliveryOrderEvent": EventKind.ORDER,
    "simpleOrderEvent": EventKind.ORDER,
    "orderDocumentsEvent": EventKind.ORDER_DOCUMENTS,
    "shipment": EventKind.SHIPMENT,
    "shipmentEvent": EventKind.SHIPMENT,
}

_FAMILIES: dict[str, EventKind] = {
    **dict.fromkeys(ORDER_EVENT_NAMES | OPT_IN_ORDER_EVENT_NAMES | HISTORIC_ORDER_EVENT_NAMES, EventKind.ORDER),
    **dict.fromkeys(ORDER_DOCUMENTS_EVENT_NAMES, EventKind.ORDER_DOCUMENTS),
    **dict.fromkeys(SHIPMENT_EVENT_NAMES, EventKind.SHIPMENT),
    ORDER_FETCH_EVENT: EventKind.ORDER_FETCH,
    SHIPMENT_FETCH_EVENT: EventKind.SHIPMENT_FETCH,
}

DOCUMENTED_EVENT_NAMES: frozenset[str] = (
    ORDER_EVENT_NAMES | ORDER_DOCUMENTS_EVENT_NAMES | SHIPMENT_EVENT_NAMES
)


def canonical_event_name(name: str) -> str:
    """The current name for a renamed historic one; any other name unchanged."""
    return RENAMED_EVENT_NAMES.get(name, name)


def is_documented(name: str) -> bool:
    """Whether the name (or the name it was renamed to) is in today's documented lists."""
    return canonical_event_name(name) in DOCUMENTED_EVENT_NAMES


def kind_of_name(name: str) -> EventKind | None:
    """The event kind a known name belongs to; ``None`` for a name nobody documented."""
    return _FAMILIES.get(canonical_event_name(name))
