"""Prometheus metrics of the receiver, on a registry of their own (one per app instance)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from tcwebhook.contract.drift import WHATS, Finding


class ReceiverMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # Labelled children by label values: ``labels()`` costs microseconds on every request.
        # The label sets are small and closed (routes, status codes, event kinds).
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._event_children: dict[tuple[str, str], Any] = {}
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
        self.contract_unknown = Counter(
            "tcwebhook_contract_unknown_total",
            "Things the contract models did not know, per stored event "
            "(field, enum_value, event_name, event_key, number_as_text)",
            ["what"],
            registry=self.registry,
        )
        self._unknown_children = {what: self.contract_unknown.labels(what) for what in WHATS}
        self.auth_failures = Counter(
            "tcwebhook_auth_failures_total", "Requests refused with 401", registry=self.registry
        )
        self.auth_limited = Counter(
            "tcwebhook_auth_rate_limited_total",
            "Failed authentications answered 429: too many from one client address",
            registry=self.registry,
        )

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request and record its latency."""
        children = self._request_children.get((route, status))
        if children is None:
            children = (self.requests.labels(route, str(status)), self.latency.labels(route))
            self._request_children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_drift(self, findings: Sequence[Finding]) -> None:
        """Count what a newly stored event carried that the models did not know."""
        for finding in findings:
            self._unknown_children[finding.what].inc()

    def count_event(self, kind: str, outcome: str) -> None:
        """Count one webhook event by kind and outcome."""
        child = self._event_children.get((kind, outcome))
        if child is None:
            child = self._event_children[(kind, outcome)] = self.events.labels(kind, outcome)
        child.inc()
