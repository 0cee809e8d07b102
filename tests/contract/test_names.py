from __future__ import annotations

import pytest

from tcwebhook.contract.kinds import EventKind
from tcwebhook.contract.names import (
    DOCUMENTED_EVENT_NAMES,
    HISTORIC_ORDER_EVENT_NAMES,
    OPT_IN_ORDER_EVENT_NAMES,
    ORDER_DOCUMENTS_EVENT_NAMES,
    ORDER_EVENT_NAMES,
    RENAMED_EVENT_NAMES,
    SHIPMENT_EVENT_NAMES,
    SUBSCRIPTION_NAMES,
    canonical_event_name,
    is_documented,
    kind_of_name,
)


class TestLists:
    """The documented lists have the sizes the contract states."""

    def test_sizes(self) -> None:
        assert len(ORDER_EVENT_NAMES) == 44
        assert len(ORDER_DOCUMENTS_EVENT_NAMES) == 2
        assert len(SHIPMENT_EVENT_NAMES) == 8
        assert len(DOCUMENTED_EVENT_NAMES) == 54

    def test_historic_names_are_not_current(self) -> None:
        assert not HISTORIC_ORDER_EVENT_NAMES & DOCUMENTED_EVENT_NAMES
        assert not OPT_IN_ORDER_EVENT_NAMES & (DOCUMENTED_EVENT_NAMES | HISTORIC_ORDER_EVENT_NAMES)

    def test_both_item_details_names_are_current(self) -> None:
        """The settings API's long name and the docs' short one (contract §9a F6)."""
        for name in ("OrderLinesItemDetailsChangedBySupplier", "OrderLinesItemDetailsChanged"):
            assert name in ORDER_EVENT_NAMES and is_documented(name) and canonical_event_name(name) == name
        assert SUBSCRIPTION_NAMES == {"OrderLinesItemDetailsChanged": "OrderLinesItemDetailsChangedBySupplier"}
        assert not set(RENAMED_EVENT_NAMES) & DOCUMENTED_EVENT_NAMES
        assert set(RENAMED_EVENT_NAMES.values()) <= DOCUMENTED_EVENT_NAMES


class TestLookups:
    """Aliases resolve to the current name and family; unknown names stay unknown."""

    @pytest.mark.parametrize(
        ("name", "canonical", "family"),
        [
            ("ShipmentDespatchedBySupplier", "ShipmentIssuedBySupplier", EventKind.SHIPMENT),
            ("OrderLinesItemDetailsChangedBySupplier", "OrderLinesItemDetailsChangedBySupplier", EventKind.ORDER),
            ("OrderCustomLabelsUpdatedByBuyer", "OrderCustomLabelsUpdatedByBuyer", EventKind.ORDER),
            ("OrderCustomLabelsUpdatedBySupplier", "OrderCustomLabelsUpdatedBySupplier", EventKind.ORDER),
            ("OrderDocumentsAttachedBySupplie", "OrderDocumentsAttachedBySupplier", EventKind.ORDER_DOCUMENTS),
            ("OrderSynced", "OrderSynced", EventKind.ORDER),
            ("OrderFetchRequested", "OrderFetchRequested", EventKind.ORDER_FETCH),
            ("Nobody", "Nobody", None),
        ],
    )
    def test_lookup(self, name: str, canonical: str, family: EventKind | None) -> None:
        assert canonical_event_name(name) == canonical
        assert kind_of_name(name) is family

    def test_is_documented(self) -> None:
        assert is_documented("ShipmentDespatchedBySupplier")
        assert not is_documented("OrderSynced")
        assert not is_documented("Nobody")
