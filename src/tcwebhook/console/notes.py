"""What a page says after an action: the server's own sentences, chosen by a key in the redirect.

The redirect after a POST carries ``done=<key>`` and whole numbers only; a free-text note in
the URL would let any link show an operator words the console never said.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from urllib.parse import urlencode

NOTES = {
    "nothing_selected": "Nothing selected.",
    "replayed": "Replayed: re-queued {requeued} deliveries of {events} event(s).",
    "replayed_missing": "Replayed: re-queued {requeued} deliveries of {events} event(s); {missing} not found.",
    "no_sink": "No sink given.",
    "replayed_dead": "Replayed {requeued} dead deliveries.",
    "still_refused": "Still refused: the body does not pass the contract yet.",
    "reprocessed": "Reprocessed and stored.",
    "reprocessed_duplicate": "Reprocessed: already stored (duplicate).",
}
_NUMBER = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() also takes '²' and '٣'


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def note_query(key: str, **numbers: int) -> str:
    """The query string naming the note ``key`` (one of ``NOTES``) with its numbers."""
    assert key in NOTES, key
    return urlencode({"done": key, **numbers})


def note_of(query: Mapping[str, str]) -> str:
    """The sentence a page shows for its query string; empty when it names none (or badly)."""
    template = NOTES.get(query.get("done", ""))
    if template is None:
        return ""
    values: dict[str, int] = {}
    for name in _fields(template):
        value = query.get(name, "")
        if not _NUMBER.fullmatch(value):
            return ""
        values[name] = int(value)
    return template.format(**values)
