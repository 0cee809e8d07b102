"""Realistic Tradecloud webhook bodies for every documented event name.

A ``SampleFactory`` keeps a small pool of orders and shipments "in flight", so the events it
builds are consistent the way real traffic is: the same order id, purchase order number and
lines across the events of one order, shipments that point at those orders' lines, one
``traceId`` per flow, a fresh ``meta.messageId`` per message and a ``lastUpdatedAt`` that only
grows. Values are invented; shapes follow the contract (sections 3 to 5).

``families`` names what can be sent, ``states`` holds the orders and shipments in flight and the
state machine of their lines, ``orders``, ``documents`` and ``shipments`` build the bodies, and
``factory`` puts them together.
"""

from __future__ import annotations

from tcwebhook.simulator.samples.factory import SampleFactory
from tcwebhook.simulator.samples.families import (
    ORDER_DOCUMENTS_EVENT_NAMES,
    ORDER_EVENT_NAMES,
    SHIPMENT_EVENT_NAMES,
    Family,
    Json,
    SampleEvent,
    Selection,
    family_of,
    parse_selection,
)
from tcwebhook.simulator.samples.states import LINE_STATE as _LINE_STATE
from tcwebhook.simulator.samples.states import WHOLE_ORDER as _WHOLE_ORDER

__all__ = [
    "ORDER_DOCUMENTS_EVENT_NAMES",
    "ORDER_EVENT_NAMES",
    "SHIPMENT_EVENT_NAMES",
    "_LINE_STATE",
    "_WHOLE_ORDER",
    "Family",
    "Json",
    "SampleEvent",
    "SampleFactory",
    "Selection",
    "family_of",
    "parse_selection",
]
