"""A quarantined body parsed again (``quarantine reprocess``, the console's Reprocess button)."""

from __future__ import annotations

from typing import cast

from tcwebhook.contract.models import Route
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.inbox.base import NewEvent, QuarantineEntry
from tcwebhook.receiver.encoding import decode_body


def reparsed(entry: QuarantineEntry, max_body_bytes: int) -> NewEvent:
    """The entry as an event, if the contract accepts it now; ContractError if it still does not.

    A body is quarantined as it was received, so its content codings are undone first, within
    the same limit as on arrival.
    """
    body = decode_body(entry.body, entry.headers.get("content-encoding"), max_body_bytes)
    parsed = parse_webhook(cast(Route, entry.route), body, entry.content_type or None)
    return NewEvent.from_parsed(
        parsed, content_type=entry.content_type or "application/json", body=body, headers=entry.headers
    )
