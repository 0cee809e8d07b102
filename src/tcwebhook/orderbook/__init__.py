"""The order book: the current state of every order and shipment, kept beside the events."""

from tcwebhook.orderbook.book import BookEntry, BookEvent, BookUpdate, LineUpdate, apply, replay, stamp, update_of
from tcwebhook.orderbook.sql import BookSummary, BookWrite
from tcwebhook.orderbook.store import BookStore

__all__ = [
    "BookEntry",
    "BookEvent",
    "BookStore",
    "BookSummary",
    "BookUpdate",
    "BookWrite",
    "LineUpdate",
    "apply",
    "replay",
    "stamp",
    "update_of",
]
