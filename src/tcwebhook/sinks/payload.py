"""What a sink delivers for an event: the bytes and their content type, decided in one place.

Every sink that sends bytes to the ERP side (sftp, amqp, sql) asks its ``PayloadSource`` and
nothing else, so a sink setting that changes what is delivered (another rendering of the event)
only has to provide another source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tcwebhook.formats import Output
from tcwebhook.sinks.event import EventLike
from tcwebhook.sinks.files import extension


@dataclass(frozen=True, slots=True)
class Payload:
    """The bytes a sink delivers for one event, with their content type."""

    data: bytes
    content_type: str
    suffix: str | None = None  # the format's file extension, when it says one

    @property
    def extension(self) -> str:
        """The format's extension, else the one the content type suggests (``.json``, ``.xml``, ``.bin``)."""
        return self.suffix or extension(self.content_type)

    def text(self) -> str:
        """The bytes as text (UTF-8; bytes that are not are replaced, never dropped silently)."""
        return self.data.decode("utf-8", "replace")


class PayloadSource(Protocol):
    """Turns an event into the payload a sink delivers."""

    def __call__(self, event: EventLike) -> Payload: ...


def event_body(event: EventLike) -> Payload:
    """The webhook body exactly as received, with its original content type."""
    return Payload(event.body, event.content_type)


def rendered_by(output: Output) -> PayloadSource:
    """The sink's ``payload``/``format`` settings as a source (``formats.Output``, the one renderer)."""
    if output.is_body:
        return event_body

    def source(event: EventLike) -> Payload:
        rendered = output.render(event)
        return Payload(rendered.body, rendered.content_type, rendered.extension)

    return source
