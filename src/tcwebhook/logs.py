"""structlog set-up: JSON lines (or console) with per-request context and a secret scrubber."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from tcwebhook.config import Settings

REDACTED = "[redacted]"


class SecretScrubber:
    """Last line of defence: no configured secret value survives into a log line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Short values would redact ordinary words; the config never generates them that short.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._scrub(v) for v in value]
        return value

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if not self._secrets:
            return event_dict
        for key, value in event_dict.items():
            event_dict[key] = self._scrub(value)
        return event_dict


def secret_values(settings: Settings) -> list[str]:
    values = [t.get_secret_value() for t in settings.auth.bearer_tokens]
    values += [c.password.get_secret_value() for c in settings.auth.basic]
    if settings.tradecloud.password is not None:
        values.append(settings.tradecloud.password.get_secret_value())
    for sink in settings.sinks:
        for secret in (sink.bearer_token, sink.basic_password):
            if secret is not None:
                values.append(secret.get_secret_value())
    return values


def configure_logging(settings: Settings, stream: Any = None) -> None:
    level = getattr(logging, settings.logging.level.upper())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.logging.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        SecretScrubber(secret_values(settings)),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )
    # Library loggers (uvicorn, asyncio) go through the same renderer and scrubber.
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # we log one line per request ourselves
    logging.getLogger("httpx").setLevel(logging.WARNING)
