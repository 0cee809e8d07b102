"""The event object handed to ERP code: the stored webhook plus its parsed forms and extras."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any, Protocol

import orjson

from tcwebhook.contract.kinds import EventKind
from tcwebhook.contract.models import ENVELOPES, TradecloudModel, UnknownWebhook
from tcwebhook.contract.parse import ROUTE_OF_KIND, Envelope, parse_stored
from tcwebhook.contract.txml import xml_to_data
from tcwebhook.errors import InvalidBody
from tcwebhook.inbox.base import StoredEvent


class EventLike(Protocol):
    """What the sinks read from an event; both ``StoredEvent`` and ``Event`` provide it."""

    @property
    def seq(self) -> int: ...
    @property
    def event_id(self) -> str: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def kind(self) -> EventKind: ...
    @property
    def event_name(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def key(self) -> str | None: ...
    @property
    def order_id(self) -> str | None: ...
    @property
    def shipment_id(self) -> str | None: ...
    @property
    def purchase_order_number(self) -> str | None: ...
    @property
    def shipment_number(self) -> str | None: ...
    @property
    def message_id(self) -> str | None: ...


def is_xml(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.endswith(("/xml", "+xml"))


@dataclass(frozen=True, eq=False)
class Event:
    """One Tradecloud webhook event as delivered to a handler.

    ``body`` holds the bytes exactly as received; ``data`` is that body as a dict and ``model``
    the typed contract model, both parsed on first use. ``extras`` carries what later steps
    attach (for example the full order from the Tradecloud API, downloaded document paths).
    """

    event_id: str
    seq: int
    kind: EventKind
    event_name: str
    content_type: str
    body: bytes
    received_at: datetime
    key: str | None = None
    order_id: str | None = None
    shipment_id: str | None = None
    purchase_order_number: str | None = None
    shipment_number: str | None = None
    message_id: str | None = None
    last_updated_at: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_stored(cls, stored: StoredEvent, extras: Mapping[str, Any] | None = None) -> Event:
        return cls(
            event_id=stored.event_id,
            seq=stored.seq,
            kind=stored.kind,
            event_name=stored.event_name,
            content_type=stored.content_type,
            body=stored.body,
            received_at=stored.received_at,
            key=stored.key,
            order_id=stored.order_id,
            shipment_id=stored.shipment_id,
            purchase_order_number=stored.purchase_order_number,
            shipment_number=stored.shipment_number,
            message_id=stored.message_id,
            last_updated_at=stored.last_updated_at,
            headers=dict(stored.headers),
            extras=dict(extras or {}),
        )

    @property
    def is_xml(self) -> bool:
        return is_xml(self.content_type)

    @property
    def received_at_utc(self) -> datetime:
        at = self.received_at
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)

    @cached_property
    def data(self) -> dict[str, Any]:
        """The body as a dict (JSON, or tXML read into the same shape); raises InvalidBody."""
        if self.is_xml:
            model: type[TradecloudModel] | None = None
            if self.kind is EventKind.UNKNOWN:
                model = UnknownWebhook
            elif not self.kind.is_fetch:
                model = ENVELOPES[ROUTE_OF_KIND[self.kind]]
            # Floats, as json.loads gives for a JSON body; ``model`` has the exact decimals.
            data: dict[str, Any] = _floats(xml_to_data(self.body, model))
            return data
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidBody(f"body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise InvalidBody("body is not a JSON object")
        return value

    @cached_property
    def model(self) -> Envelope:
        """The typed contract envelope (``model.event`` is the event object); raises InvalidBody."""
        return parse_stored(self.kind, self.content_type, self.body).envelope


def _floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return float(value) if isinstance(value, Decimal) else value
