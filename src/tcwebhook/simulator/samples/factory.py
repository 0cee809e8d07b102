"""The sample factory: one object that builds every family's bodies from one consistent world."""

from __future__ import annotations

from collections.abc import Iterator

from tcwebhook.simulator.samples.documents import DocumentBodies
from tcwebhook.simulator.samples.families import Family, SampleEvent, Selection
from tcwebhook.simulator.samples.orders import OrderBodies
from tcwebhook.simulator.samples.shipments import ShipmentBodies


class SampleFactory(OrderBodies, DocumentBodies, ShipmentBodies):
    """Builds consistent webhook bodies; seed it for repeatable ids and numbers.

    ``meta.messageId`` is always a fresh random UUID, also with a seed, because two runs against
    one receiver must not look like redeliveries of each other.
    """

    # -- public -----------------------------------------------------------------------------

    def event(self, family: Family, event_name: str) -> SampleEvent:
        """One webhook message of ``family`` named ``event_name``."""
        if family is Family.SHIPMENT:
            return self._shipment_event(event_name)
        if family is Family.DOCUMENTS:
            return self._documents_event(event_name)
        return self._order_event(event_name, single_delivery=family is Family.SINGLE_DELIVERY)

    def stream(self, selection: Selection, count: int) -> Iterator[SampleEvent]:
        """``count`` events; every pair of ``selection`` once per cycle, in a shuffled order."""
        cycle: list[tuple[Family, str]] = []
        for _ in range(count):
            if not cycle:
                cycle = list(selection)
                self._rng.shuffle(cycle)
            family, name = cycle.pop()
            yield self.event(family, name)
