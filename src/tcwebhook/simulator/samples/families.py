"""What the simulator can send: the body families, an ``--events`` selection, one sample message."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tcwebhook.contract import names
from tcwebhook.contract.kinds import EventKind

Json = dict[str, Any]

# Sorted, so a seeded factory builds the same stream on every run.
ORDER_EVENT_NAMES: tuple[str, ...] = tuple(sorted(names.ORDER_EVENT_NAMES))
ORDER_DOCUMENTS_EVENT_NAMES: tuple[str, ...] = tuple(sorted(names.ORDER_DOCUMENTS_EVENT_NAMES))
SHIPMENT_EVENT_NAMES: tuple[str, ...] = tuple(sorted(names.SHIPMENT_EVENT_NAMES))


class Family(StrEnum):
    """A kind of webhook body, named as ``--events`` spells it."""

    ORDER = "order"
    SINGLE_DELIVERY = "single-delivery"
    DOCUMENTS = "documents"
    SHIPMENT = "shipment"

    @property
    def envelope_key(self) -> str:
        return _ENVELOPE_KEYS[self]

    @property
    def event_names(self) -> tuple[str, ...]:
        if self is Family.DOCUMENTS:
            return ORDER_DOCUMENTS_EVENT_NAMES
        if self is Family.SHIPMENT:
            return SHIPMENT_EVENT_NAMES
        return ORDER_EVENT_NAMES

    @property
    def kind(self) -> EventKind:
        if self is Family.DOCUMENTS:
            return EventKind.ORDER_DOCUMENTS
        if self is Family.SHIPMENT:
            return EventKind.SHIPMENT
        return EventKind.ORDER


_ENVELOPE_KEYS = {
    Family.ORDER: "orderEvent",
    Family.SINGLE_DELIVERY: "singleDeliveryOrderEvent",
    Family.DOCUMENTS: "orderDocumentsEvent",
    Family.SHIPMENT: "shipment",
}

_FAMILY_NAMES = frozenset(f.value for f in Family)

Selection = tuple[tuple[Family, str], ...]


def family_of(event_name: str, *, single_delivery: bool = False) -> Family:
    """The family a documented event name belongs to; ``KeyError`` for an unknown name."""
    if event_name in SHIPMENT_EVENT_NAMES:
        return Family.SHIPMENT
    if event_name in ORDER_DOCUMENTS_EVENT_NAMES:
        return Family.DOCUMENTS
    if event_name in ORDER_EVENT_NAMES:
        return Family.SINGLE_DELIVERY if single_delivery else Family.ORDER
    raise KeyError(event_name)


def parse_selection(spec: str, *, single_delivery: bool = False) -> Selection:
    """Turn an ``--events`` value into the (family, event name) pairs to draw from.

    ``mix`` is every family; a family name selects its events; anything else must be a
    documented event name (order events go in ``orderEvent`` unless ``single_delivery``).
    Raises ``ValueError`` naming the first unknown item.
    """
    pairs: list[tuple[Family, str]] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "mix":
            families = list(Family)
        elif item in _FAMILY_NAMES:
            families = [Family(item)]
        else:
            try:
                pairs.append((family_of(item, single_delivery=single_delivery), item))
            except KeyError:
                choices = ", ".join(["mix", *Family])
                raise ValueError(f"unknown event or family {item!r}: use {choices} or documented event names") from None
            continue
        pairs.extend((fam, name) for fam in families for name in fam.event_names)
    if not pairs:
        raise ValueError("no events selected")
    return tuple(dict.fromkeys(pairs))


@dataclass(frozen=True, slots=True)
class SampleEvent:
    """One webhook message: its body as data plus the ids a test or a GET call needs."""

    family: Family
    event_name: str
    data: Json
    message_id: str
    order_id: str | None = None
    shipment_id: str | None = None
    purchase_order_number: str | None = None
    shipment_number: str | None = None
    last_updated_at: str | None = None

    @property
    def kind(self) -> EventKind:
        return self.family.kind

    @property
    def object_id(self) -> str:
        """The id a GET webhook puts in the URL (order id, or shipment id for shipments)."""
        value = self.shipment_id if self.family is Family.SHIPMENT else self.order_id
        assert value is not None
        return value
