"""What a sink delivers for an event: the bytes and their content type, decided in one place.

Every sink that sends bytes to the ERP side (sftp, amqp, sql) asks its ``PayloadSource`` and
nothing else, so a sink setting that changes what is delivered (another rendering of the event)
only has to provide another source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tcwebhook.sinks.event import EventLike
from tcwebhook.sinks.files import extension


@dataclass(frozen=True, slots=True)
class Payload:
    """The bytes a sink delivers for one event, with their content type."""

    data: bytes
    content_type: str

    @property
    def extension(self) -> str:
        """The file extension the content type suggests (``.json``, ``.xml`` or ``.bin``)."""
        return extension(self.content_type)

    def text(self) -> str:
        """The bytes as text (UTF-8; bytes that are not are replaced, never dropped silently)."""
        return self.data.decode("utf-8", "replace")


class PayloadSource(Protocol):
    """Turns an event into the payload a sink delivers."""

    def __call__(self, event: EventLike) -> Payload: ...


def event_body(event: EventLike) -> Payload:
    """The webhook body exactly as received, with its original content type."""
    return Payload(event.body, event.content_type)
