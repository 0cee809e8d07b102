"""What the book's readers and the delivery need from a store (both stores provide it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from tcwebhook.orderbook.book import BookEntry, BookEvent
from tcwebhook.orderbook.sql import BookSummary, BookWrite


@runtime_checkable
class BookStore(Protocol):
    """The order book kept in a store."""

    async def book_entry(self, key: str) -> BookEntry | None:
        """The current state of ``order:<id>`` or ``shipment:<id>``, None when no event told of it."""

    async def book_summaries(
        self, *, status: str | None = None, number: str | None = None, limit: int = 100
    ) -> Sequence[BookSummary]:
        """Orders, most recently changed first (``status``: the header's process status)."""

    async def apply_to_book(self, write: BookWrite, event: BookEvent) -> None:
        """Keep an object fetched while delivering ``event`` (a full order, a resolved trigger),
        durably; ``write`` carries its data (``orderbook.updates.fetched_write``)."""
