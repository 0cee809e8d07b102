"""Tracing with the real SDK, spans kept in memory: continuation, links, and the off switch."""

from __future__ import annotations

import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tcwebhook.config import TelemetrySettings
from tcwebhook.telemetry import Tracing, start_tracing
from tcwebhook.telemetry.tracing import inject_trace


def _tracing(resume_within: float = 3600.0) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider, resume_within=resume_within), exporter


def _stored_traceparent(tracing: Tracing) -> str:
    with tracing.server_span("POST orders", {}), tracing.span("store"):
        found = tracing.traceparent()
    assert found is not None
    return found


def test_a_recent_event_continues_the_request_trace() -> None:
    tracing, exporter = _tracing()
    stored = _stored_traceparent(tracing)
    with tracing.continued("deliver erp", stored, time.time() - 10):
        pass
    store, _request, deliver = exporter.get_finished_spans()
    assert deliver.context.trace_id == store.context.trace_id
    assert deliver.parent is not None and deliver.parent.span_id == store.context.span_id
    assert not deliver.links


def test_an_old_event_starts_a_new_trace_linked_to_its_request() -> None:
    tracing, exporter = _tracing(resume_within=60)
    stored = _stored_traceparent(tracing)
    with tracing.continued("deliver erp", stored, time.time() - 3600):
        pass
    store, _request, deliver = exporter.get_finished_spans()
    assert deliver.context.trace_id != store.context.trace_id
    assert deliver.parent is None
    assert [link.context.span_id for link in deliver.links] == [store.context.span_id]


def test_an_event_stored_without_tracing_gets_a_root_span() -> None:
    tracing, exporter = _tracing()
    with tracing.continued("deliver erp", None, time.time()):
        pass
    (deliver,) = exporter.get_finished_spans()
    assert deliver.parent is None and not deliver.links


def test_the_current_span_goes_out_as_traceparent() -> None:
    tracing, exporter = _tracing()
    headers: dict[str, str] = {}
    with tracing.span("sink erp"):
        inject_trace(headers)
    (span,) = exporter.get_finished_spans()
    version, trace_id, parent_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, parent_id) == ("00", f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")
    assert int(flags, 16) & 1  # sampled


def test_off_makes_no_spans_and_sends_no_header() -> None:
    tracing = start_tracing(TelemetrySettings(), "serve")
    assert not tracing.enabled
    headers: dict[str, str] = {}
    with tracing.span("store") as span:
        inject_trace(headers)
        assert tracing.traceparent() is None
    assert span is None and headers == {}
