"""Delivery of committed events to the sinks: the dispatcher and its back-off."""

from tcwebhook.dispatch.dispatcher import Dispatcher, SyncOutcome, SyncStatus, delivery_backoff

__all__ = ["Dispatcher", "SyncOutcome", "SyncStatus", "delivery_backoff"]
