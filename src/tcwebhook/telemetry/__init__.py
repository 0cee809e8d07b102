"""OpenTelemetry tracing of an event's path, from Tradecloud's request to the ERP's answer."""

from tcwebhook.telemetry.tracing import Tracing, start_tracing

__all__ = ["Tracing", "start_tracing"]
