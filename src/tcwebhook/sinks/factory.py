"""Build the configured sinks from ``[[sinks]]`` settings."""

from __future__ import annotations

from pydantic import SecretStr

from tcwebhook.config import Settings, SinkSettings
from tcwebhook.sinks.base import Sink
from tcwebhook.sinks.files import FilesSink
from tcwebhook.sinks.http import HttpSink
from tcwebhook.sinks.python import PythonSink


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def build_sink(cfg: SinkSettings, *, max_threads: int = 16) -> Sink:
    """One sink from its settings; raises StartupError with one sentence when unusable."""
    if cfg.type == "python":
        assert cfg.callable is not None  # guaranteed by SinkSettings validation
        # ``timeout`` defaults to 10 s for HTTP; a handler gets a deadline only if one is set.
        timeout = cfg.timeout if "timeout" in cfg.model_fields_set else None
        return PythonSink(cfg.name, cfg.callable, events=cfg.events, timeout=timeout, max_threads=max_threads)
    if cfg.type == "http":
        assert cfg.url is not None
        return HttpSink(
            cfg.name,
            cfg.url,
            events=cfg.events,
            headers=cfg.headers,
            bearer_token=_secret(cfg.bearer_token),
            basic_username=cfg.basic_username,
            basic_password=_secret(cfg.basic_password),
            verify=cfg.verify,
            ca_bundle=cfg.ca_bundle,
            timeout=cfg.timeout,
            permanent_codes=cfg.permanent_codes,
        )
    assert cfg.directory is not None
    return FilesSink(
        cfg.name, cfg.directory, events=cfg.events, subfolders=cfg.subfolders, group_readable=cfg.group_readable
    )


def build_sinks(settings: Settings) -> list[Sink]:
    """Every ``[[sinks]]`` entry, in configuration order."""
    return [build_sink(cfg, max_threads=settings.delivery.concurrency) for cfg in settings.sinks]


# Each implementation must satisfy the protocol the dispatcher relies on.
_CHECK: tuple[type[Sink], ...] = (PythonSink, HttpSink, FilesSink)
