"""Build the configured sinks from ``[[sinks]]`` settings."""

from __future__ import annotations

from typing import assert_never

from pydantic import SecretStr

from tcwebhook.config import (
    AmqpSinkSettings,
    FilesSinkSettings,
    HttpSinkSettings,
    PythonSinkSettings,
    Settings,
    SftpSinkSettings,
    SinkSettings,
    SqlSinkSettings,
)
from tcwebhook.formats import Output
from tcwebhook.sinks.base import EventSink
from tcwebhook.sinks.files import FilesSink
from tcwebhook.sinks.http import HttpSink
from tcwebhook.sinks.payload import rendered_by
from tcwebhook.sinks.python import PythonSink


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def build_sink(cfg: SinkSettings, *, max_threads: int = 16) -> EventSink:
    """One sink from its settings; raises StartupError with one sentence when unusable."""
    output = Output.from_settings(cfg)
    if isinstance(cfg, PythonSinkSettings):
        return PythonSink(
            cfg.name, cfg.callable, events=cfg.events, timeout=cfg.timeout, max_threads=max_threads, output=output
        )
    if isinstance(cfg, HttpSinkSettings):
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
            output=output,
        )
    if isinstance(cfg, FilesSinkSettings):
        return FilesSink(
            cfg.name,
            cfg.directory,
            events=cfg.events,
            subfolders=cfg.subfolders,
            group_readable=cfg.group_readable,
            output=output,
        )
    if isinstance(cfg, SftpSinkSettings):
        from tcwebhook.sinks.sftp import SftpSink

        return SftpSink(
            cfg.name,
            cfg.host,
            port=cfg.port,
            username=cfg.username,
            password=_secret(cfg.password),
            private_key=cfg.private_key,
            passphrase=_secret(cfg.passphrase),
            known_hosts=cfg.known_hosts,
            remote_dir=cfg.remote_dir,
            filename=cfg.filename,
            events=cfg.events,
            timeout=cfg.timeout,
            payload=rendered_by(output),
        )
    if isinstance(cfg, AmqpSinkSettings):
        from tcwebhook.sinks.amqp import AmqpSink

        return AmqpSink(
            cfg.name,
            cfg.url.get_secret_value(),
            exchange=cfg.exchange,
            routing_key=cfg.routing_key,
            declare=cfg.declare,
            queue=cfg.queue,
            ca_bundle=cfg.ca_bundle,
            events=cfg.events,
            timeout=cfg.timeout,
            payload=rendered_by(output),
        )
    if isinstance(cfg, SqlSinkSettings):
        from tcwebhook.sinks.sql import SqlSink

        return SqlSink(
            cfg.name,
            cfg.url.get_secret_value(),
            table=cfg.table_name,
            create_table=cfg.create_table,
            lines=output.rows if cfg.rows == "lines" else None,
            events=cfg.events,
            timeout=cfg.timeout,
            pool_size=min(max_threads, 8),
            payload=rendered_by(output),
        )
    assert_never(cfg)


def build_sinks(settings: Settings) -> list[EventSink]:
    """Every ``[[sinks]]`` entry, in configuration order."""
    return [build_sink(cfg, max_threads=settings.delivery.concurrency) for cfg in settings.sinks]


# Each implementation must satisfy the protocol the dispatcher and the Tradecloud wrapper rely on.
# (The sftp, amqp and sql sinks, imported only when configured, check themselves at their end.)
_CHECK: tuple[type[EventSink], ...] = (PythonSink, HttpSink, FilesSink)
