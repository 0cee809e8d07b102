"""Delivery of committed events to the sinks: the dispatcher and its back-off."""

from tcwebhook.dispatch.dispatcher import Dispatcher, delivery_backoff
from tcwebhook.dispatch.sync import SyncOutcome, SyncStatus

__all__ = ["Dispatcher", "SyncOutcome", "SyncStatus", "delivery_backoff"]
