"""Names made from event fields: the sftp sink's ``filename`` and the amqp sink's ``routing_key``.

A pattern is text with fields in braces, as in ``"tradecloud.{kind}.{eventName}"``:

=================  ==============================================================================
``{stem}``         the files sink's name without extension (time, seq, event name, number, id)
``{ext}``          the payload's extension with its dot: ``.json``, ``.xml`` or ``.bin``
``{eventId}``      tcwebhook's event id (unique per event)
``{seq}``          the arrival number, nine digits
``{kind}``         ``order``, ``shipment``, ``order-fetch`` or ``shipment-fetch``
``{eventName}``    the Tradecloud event name
``{orderId}``      the Tradecloud order id (``none`` for a shipment)
``{shipmentId}``   the Tradecloud shipment id (``none`` for an order)
``{number}``       the purchase order number, or the shipment number
``{receivedAt}``   the arrival time, UTC, as ``20260527T101502.123456Z``
=================  ==============================================================================

Every value keeps ``[A-Za-z0-9.-]`` and has any other character percent-encoded (see
``files.safe_part``: ``PO 1/2`` is ``PO%201%2F2``), so no field can add a path separator to a file
name or a word separator other than ``.`` to a routing key, and two numbers never share a name.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

from tcwebhook.errors import StartupError
from tcwebhook.sinks.event import EventLike
from tcwebhook.sinks.files import file_stem, safe_part


def _received(event: EventLike) -> str:
    at = event.received_at
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y%m%dT%H%M%S.%fZ")


def _number(event: EventLike) -> str | None:
    if event.kind.value.startswith("shipment"):
        return event.shipment_number or event.shipment_id
    return event.purchase_order_number or event.order_id


_FIELDS: dict[str, Callable[[EventLike], str]] = {
    "stem": file_stem,
    "eventId": lambda e: safe_part(e.event_id, limit=128),
    "seq": lambda e: f"{e.seq:09d}",
    "kind": lambda e: e.kind.value,
    "eventName": lambda e: safe_part(e.event_name),
    "orderId": lambda e: safe_part(e.order_id),
    "shipmentId": lambda e: safe_part(e.shipment_id),
    "number": lambda e: safe_part(_number(e)),
    "receivedAt": _received,
}
FIELDS = (*_FIELDS, "ext")


@dataclass(frozen=True, slots=True)
class NamePattern:
    """A parsed pattern; ``render`` fills it in for one event."""

    text: str
    fields: frozenset[str]

    @classmethod
    def parse(cls, text: str, *, setting: str) -> NamePattern:
        """Check ``text``; an unknown field or a stray brace is a StartupError naming ``setting``."""
        found: set[str] = set()
        try:
            for _literal, field, spec, conversion in string.Formatter().parse(text):
                if field is None:
                    continue
                if field not in FIELDS or spec or conversion:
                    raise StartupError(
                        f"{setting}: {{{field}}} is not a field; use " + ", ".join(f"{{{f}}}" for f in FIELDS) + "."
                    )
                found.add(field)
        except ValueError as exc:
            raise StartupError(f"{setting}: {exc}; write a literal brace as {{{{ or }}}}.") from None
        return cls(text, frozenset(found))

    def render(self, event: EventLike, ext: str = "") -> str:
        values = {name: fn(event) for name, fn in _FIELDS.items() if name in self.fields}
        values["ext"] = ext
        return self.text.format_map(values)
