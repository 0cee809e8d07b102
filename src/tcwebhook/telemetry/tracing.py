"""Spans for receiving and delivering, exported over OTLP/HTTP when ``[telemetry] enabled``.

Off by default, and then free of cost on the request path: every entry point checks one flag and
hands out ``contextlib.nullcontext`` instead of a span. On, a request is one trace (auth, parse and
store as child spans); its context is stored with the event (W3C ``traceparent``), so a delivery
made later, by this or another process, continues the same trace, or starts a new one linked to
it once the stored context is older than ``resume_within`` (trace back-ends show traces that run
for days badly).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tcwebhook.config import TelemetrySettings
from tcwebhook.inbox.base import AttemptResult

SERVICE_NAME = "tcwebhook"
_PROPAGATOR = TraceContextTextMapPropagator()


class Tracing:
    """The process's tracer, or nothing at all when tracing is off."""

    def __init__(self, provider: TracerProvider | None = None, *, resume_within: float = 3600.0) -> None:
        self._provider = provider
        self.enabled = provider is not None
        self._tracer = provider.get_tracer("tcwebhook") if provider is not None else None
        self._resume_within = resume_within

    @classmethod
    def off(cls) -> Tracing:
        return cls()

    def span(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> contextlib.AbstractContextManager[Span | None]:
        """A child of the current span (or a root), made current while the context lasts."""
        if self._tracer is None:
            return contextlib.nullcontext()
        return self._tracer.start_as_current_span(name, kind=kind, attributes=_clean(attributes))

    def server_span(
        self, name: str, headers: Mapping[str, str], attributes: Mapping[str, Any] | None = None
    ) -> contextlib.AbstractContextManager[Span | None]:
        """The span of one webhook request, continuing the sender's ``traceparent`` if it sent one."""
        if self._tracer is None:
            return contextlib.nullcontext()
        parent = _PROPAGATOR.extract(headers)
        return self._tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=_clean(attributes)
        )

    @contextlib.contextmanager
    def continued(
        self, name: str, traceparent: str | None, stored_at: float, attributes: Mapping[str, Any] | None = None
    ) -> Iterator[Span | None]:
        """A span in the trace of the stored request ``traceparent`` (a link to it once too old)."""
        if self._tracer is None:
            yield None
            return
        stored = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
        links: list[Link] = []
        parent: otel_context.Context | None = otel_context.Context()  # a new root unless resumed
        if stored is not None:
            remote = trace.get_current_span(stored).get_span_context()
            if remote.is_valid:
                if time.time() - stored_at <= self._resume_within:
                    parent = stored
                else:
                    links.append(Link(remote))
        with self._tracer.start_as_current_span(
            name, context=parent, links=links, attributes=_clean(attributes)
        ) as span:
            yield span

    def traceparent(self) -> str | None:
        """The current span as a W3C ``traceparent`` value (None when off or outside a span)."""
        if self._tracer is None:
            return None
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    def shutdown(self) -> None:
        """Export what is still buffered, within the exporter's timeout."""
        if self._provider is not None:
            self._provider.shutdown()


def start_tracing(settings: TelemetrySettings, role: str) -> Tracing:
    """The tracer of a process in ``role`` (serve, worker, …); ``Tracing.off()`` unless enabled."""
    if not settings.enabled:
        return Tracing.off()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from tcwebhook import __version__

    resource = Resource.create(
        {
            "service.name": SERVICE_NAME,
            "service.version": __version__,
            "tcwebhook.role": role,
            **settings.resource_attributes,
        }
    )
    provider = TracerProvider(resource=resource, sampler=ParentBasedTraceIdRatio(settings.sample_ratio))
    # Unset keys fall back to the standard OTEL_EXPORTER_OTLP_* variables, read by the exporter.
    exporter = OTLPSpanExporter(
        endpoint=settings.endpoint,
        headers={k: v.get_secret_value() for k, v in settings.headers.items()} or None,
        timeout=settings.timeout,
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=settings.export_delay_ms))
    return Tracing(provider, resume_within=settings.resume_within)


def record_status(span: Span | None, status: int) -> None:
    """The HTTP status of a request span; 5xx marks the span as failed."""
    if span is None:
        return
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def record_attempt(span: Span | None, result: AttemptResult) -> None:
    """The outcome of a delivery attempt; an attempt that did not deliver marks the span failed."""
    if span is None:
        return
    span.set_attribute("tcwebhook.delivery.status", str(result.status))
    if result.outcome is not None:
        span.set_attribute("tcwebhook.delivery.outcome", str(result.outcome))
    if result.error:
        span.set_status(Status(StatusCode.ERROR, result.error[:200]))


def inject_trace(headers: dict[str, str]) -> None:
    """Add ``traceparent`` (and ``tracestate``) of the current span, if any, to outgoing ``headers``."""
    if trace.get_current_span().get_span_context().is_valid:
        _PROPAGATOR.inject(headers)


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current recording span, as hex, for log lines."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not attributes:
        return None
    return {k: v for k, v in attributes.items() if v is not None}
