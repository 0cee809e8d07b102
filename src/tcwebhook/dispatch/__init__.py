"""Delivery of committed events to the sinks: the dispatcher, its retry policy, the worker."""

from tcwebhook.dispatch.dispatcher import Dispatcher, SyncOutcome, SyncStatus
from tcwebhook.dispatch.retry import RetryPolicy
from tcwebhook.dispatch.worker import delivery_sinks, run_worker

__all__ = ["Dispatcher", "RetryPolicy", "SyncOutcome", "SyncStatus", "delivery_sinks", "run_worker"]
