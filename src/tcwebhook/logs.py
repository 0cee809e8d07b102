"""structlog set-up: JSON lines (or console) with per-request context and a secret scrubber."""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any, TextIO

import orjson
import structlog
from pydantic import BaseModel, SecretBytes, SecretStr

from tcwebhook.config import Settings, url_passwords
from tcwebhook.terminal import escape_log_values

REDACTED = "[redacted]"


class SecretScrubber:
    """Last line of defence: no configured secret value survives into a log line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Every length: a short secret may redact ordinary words too, which beats leaking it.
        # (Webhook credentials are at least 16 characters; short ones are someone else's choice.)
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.version = 0  # bumped by ``add``, so renderers know to recompute what they look for

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Scrub these too from now on (new credentials after a reload; the old stay secret)."""
        merged = set(self._secrets) | {s for s in secrets if s}
        if len(merged) != len(self._secrets):
            self._secrets = sorted(merged, key=len, reverse=True)
            self.version += 1

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


def _fallback(value: Any) -> Any:
    # What JSON cannot hold is logged as its repr (structlog's JSONRenderer does the same).
    return repr(value)


def _dumps(event_dict: MutableMapping[str, Any]) -> bytes:
    try:
        line = orjson.dumps(event_dict, default=_fallback)
    except (TypeError, orjson.JSONEncodeError):  # non-string keys, integers beyond 64 bits, ...
        line = b""
    if line and line.isascii():
        return line
    # Lines stay ASCII (non-ASCII escaped), whatever the encoding of the log stream.
    return json.dumps(event_dict, default=_fallback).encode()


class JsonLineRenderer:
    """Renders an event as one JSON line, and checks the finished line for configured secrets.

    Checking the rendered bytes is cheap when nothing matches (the usual case) and also catches
    a secret inside a value rendered through ``repr``. On a match the values are scrubbed, the
    line rendered again and any remaining occurrence replaced.
    """

    def __init__(self, scrubber: SecretScrubber) -> None:
        self._scrubber = scrubber
        self._version = -1
        self._needles: list[bytes] = []
        self._redacted = REDACTED.encode()

    def _refresh(self) -> None:
        needles: set[bytes] = set()
        for secret in self._scrubber.secrets:
            # As it appears inside a JSON string, raw or inside a repr (an exception's, say).
            for form in (secret, repr(secret)[1:-1]):
                needles.add(orjson.dumps(form)[1:-1])
                needles.add(json.dumps(form)[1:-1].encode())
        self._needles = sorted(needles, key=len, reverse=True)
        self._version = self._scrubber.version

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        if self._version != self._scrubber.version:
            self._refresh()
        line = _dumps(event_dict)
        for needle in self._needles:
            if needle in line:
                line = _dumps(self._scrubber(logger, method, event_dict))
                for other in self._needles:
                    line = line.replace(other, self._redacted)
                break
        return line.decode()


class LineWriter:
    """Writes and flushes each rendered line (the stream is looked up per line, as print does)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(message + "\n")
            stream.flush()

    log = debug = info = warn = warning = error = err = critical = exception = fatal = failure = msg


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, found by type so that a new secret key cannot be missed.

    That is each ``SecretStr``/``SecretBytes`` anywhere in the model, the Basic header form of each
    (Base64 of ``username:secret`` with the usernames of its own section), and the password of
    every URL-valued string (a store or sink URL with ``user:password@``).
    """
    values: set[str] = set()
    _collect(settings, values)
    values.update(url_passwords(settings.store_url))  # the derived default is no field of its own
    values.add(os.environ.get("PGPASSWORD", ""))  # libpq's own source of the store password
    return sorted(v for v in values if v)


def _collect(value: object, found: set[str], usernames: Sequence[str] = ("",)) -> None:
    secret = _secret(value)
    if secret is not None:
        if secret:
            found.add(secret)
            if "://" in secret:  # a secret URL's password also appears alone (driver errors)
                found.update(url_passwords(secret))
            found.update(base64.b64encode(f"{user}:{secret}".encode()).decode() for user in usernames)
    elif isinstance(value, BaseModel):
        fields = {name: getattr(value, name) for name in type(value).model_fields}
        # A secret's Basic form pairs it with the username(s) of its own section.
        names = [v for k, v in fields.items() if k.endswith("username") and isinstance(v, str)] or [""]
        for item in fields.values():
            _collect(item, found, names)
    elif isinstance(value, str):
        if "://" in value:
            found.update(url_passwords(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect(item, found, usernames)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _collect(item, found, usernames)


def _secret(value: object) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, SecretBytes):
        return value.get_secret_value().decode("utf-8", "replace")
    return None


# The scrubber of the logging set-up in force: loggers cache their processors on first use, so
# secrets added later (a SIGHUP reload) must reach this same object.
_scrubbers: list[SecretScrubber] = []


def add_secrets(settings: Settings) -> None:
    """Scrub the secrets of ``settings`` from every later log line too."""
    for scrubber in _scrubbers:
        scrubber.add(secret_values(settings))


def add_trace_ids(_logger: object, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """``trace_id`` and ``span_id`` of the current span, when there is one."""
    from tcwebhook.telemetry.tracing import current_ids

    ids = current_ids()
    if ids is not None:
        event.setdefault("trace_id", ids[0])
        event.setdefault("span_id", ids[1])
    return event


def configure_logging(settings: Settings, stream: Any = None) -> None:
    level = getattr(logging, settings.logging.level.upper())
    scrubber = SecretScrubber(secret_values(settings))
    _scrubbers[:] = [scrubber]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if settings.telemetry.enabled:
        shared.append(add_trace_ids)  # log lines and traces join on these ids
    renderer: Any
    if settings.logging.format == "json":
        renderer = JsonLineRenderer(scrubber)  # scrubs secrets itself, on the finished line
    else:
        # Console lines go to a terminal: a request path's escape bytes must not act on it.
        shared += [scrubber, escape_log_values]
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    writer = LineWriter(stream)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_args: writer,
        cache_logger_on_first_use=True,
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
