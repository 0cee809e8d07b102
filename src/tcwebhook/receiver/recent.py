"""Bodies this process stored lately, so a sender's retry of the same bytes is answered from memory.

A retry (a lost answer, a timeout on the sender's side) repeats the request byte for byte. The same
bytes on the same route with the same Content-Type and Content-Encoding validate to the same event
with the same dedupe key, so such a retry is a duplicate of the event stored first: it is answered
without parsing, validating or asking the store. An entry is added only once the store has answered
(the event is durable) and is dropped after ``ttl`` seconds, kept below the store's retention, so
it never names an event pruned since. A body that differs in any byte takes the full path.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

# The longest an entry lives, and its share of the store's retention when that is shorter: a
# sender's retries of one request come within minutes.
MAX_TTL = 300.0
RETENTION_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class KnownBody:
    """What the answer and the access log of a retry need: the event stored first."""

    event_id: str
    seq: int
    kind: str
    event_name: str
    expires: float  # time.monotonic()


class RecentBodies:
    """The last ``capacity`` stored bodies of this process, by a digest of the request's bytes."""

    def __init__(self, capacity: int, retention: float | None = None) -> None:
        self.capacity = capacity
        self.ttl = MAX_TTL if retention is None else min(MAX_TTL, retention * RETENTION_SHARE)
        self._entries: dict[bytes, KnownBody] = {}  # oldest first: insertion order is store order

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def digest(route: str, content_type: str | None, encoding: str | None, body: bytes) -> bytes:
        # The header values are short and separated by a byte no header value holds.
        h = hashlib.sha256(f"{route}\n{content_type}\n{encoding}\n".encode("latin-1", "replace"))
        h.update(body)
        return h.digest()

    def get(self, digest: bytes) -> KnownBody | None:
        known = self._entries.get(digest)
        if known is None:
            return None
        if known.expires <= time.monotonic():
            del self._entries[digest]
            return None
        return known

    def put(self, digest: bytes, event_id: str, seq: int, kind: str, event_name: str) -> None:
        entries = self._entries
        entries.pop(digest, None)
        entries[digest] = KnownBody(event_id, seq, kind, event_name, time.monotonic() + self.ttl)
        while len(entries) > self.capacity:
            del entries[next(iter(entries))]
