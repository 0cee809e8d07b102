"""The ``events`` filter of a sink: event kinds and event-name glob patterns."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import StartupError
from tcwebhook.sinks.event import EventLike

# Events of kind unknown are chosen by a sink's accept_unknown, never by its filter.
_KINDS = {k.value: k for k in EventKind if k is not EventKind.UNKNOWN}


@dataclass(frozen=True, slots=True)
class SinkFilter:
    """Selects events by kind or by event name (``fnmatch`` glob, case-sensitive); empty = all."""

    kinds: frozenset[EventKind] = frozenset()
    patterns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str], *, sink: str = "sink") -> SinkFilter:
        """Split ``events`` entries into kinds and name patterns; a typo is a StartupError."""
        kinds: set[EventKind] = set()
        patterns: list[str] = []
        for raw in entries:
            entry = raw.strip()
            if entry == EventKind.UNKNOWN.value:
                raise StartupError(
                    f"Sink {sink!r}: events entry 'unknown' is no filter; set accept_unknown = true "
                    "to deliver events of kind unknown to this sink."
                )
            if entry in _KINDS:
                kinds.add(_KINDS[entry])
                continue
            # Event names are CamelCase, so an all-lowercase word is a misspelt kind, not a
            # pattern: it would silently match nothing.
            if not entry or (entry.isidentifier() and entry.lower() == entry):
                known = ", ".join(_KINDS)
                raise StartupError(
                    f"Sink {sink!r}: events entry {raw!r} is neither an event kind ({known}) "
                    "nor an event-name pattern such as 'Order*BySupplier'."
                )
            patterns.append(entry)
        return cls(frozenset(kinds), tuple(patterns))

    @property
    def selects_all(self) -> bool:
        return not self.kinds and not self.patterns

    def accepts(self, event: EventLike) -> bool:
        if self.selects_all or event.kind in self.kinds:
            return True
        return any(fnmatch.fnmatchcase(event.event_name, p) for p in self.patterns)
