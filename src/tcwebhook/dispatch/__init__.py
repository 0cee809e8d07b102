"""Delivery of committed events to the sinks: the dispatcher and its retry policy."""

from tcwebhook.dispatch.dispatcher import Dispatcher, SyncOutcome, SyncStatus
from tcwebhook.dispatch.retry import RetryPolicy

__all__ = ["Dispatcher", "RetryPolicy", "SyncOutcome", "SyncStatus"]
