"""Prometheus metrics of the receiver, on a registry of their own (one per app instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ReceiverMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "tcwebhook_requests_total",
            "HTTP requests by route and status code",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tcwebhook_request_seconds",
            "Time from request start to response",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=self.registry,
        )
        self.events = Counter(
            "tcwebhook_events_total",
            "Webhook events by kind and outcome (stored, duplicate, quarantined)",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "tcwebhook_auth_failures_total", "Requests refused with 401", registry=self.registry
        )
