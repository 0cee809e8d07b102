"""The order book: the current state of every order and shipment, kept beside the events."""

from tcwebhook.orderbook.book import BookEntry, BookEvent, BookUpdate, LineUpdate, apply, replay, stamp, update_of

__all__ = ["BookEntry", "BookEvent", "BookUpdate", "LineUpdate", "apply", "replay", "stamp", "update_of"]
