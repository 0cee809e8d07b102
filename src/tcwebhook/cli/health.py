"""``tcwebhook health``: ask the local ``serve`` for ``/healthz`` over TLS (container health checks).

A container's HEALTHCHECK or an exec probe runs inside the container and has no CA bundle that
signed the certificate, so the check trusts exactly the configured certificate (the leaf as a
trust anchor). That still proves TLS works with the certificate clients get.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated

import httpx
import typer

from tcwebhook.cli.options import ConfigOption, startup_guard
from tcwebhook.config import Settings, load_settings
from tcwebhook.transport.acme import AcmeFiles

# A wildcard listening address is reached through loopback from inside the same host or container.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - addresses compared, not bound


def register(app: typer.Typer) -> None:
    app.command(help="Exit 0 when the local serve answers /healthz with 200 over TLS (container health checks).")(
        health
    )


def _certificate(settings: Settings) -> Path:
    if settings.tls.certfile is not None:
        return Path(settings.tls.certfile)
    return AcmeFiles.of(settings).cert


def _context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(_certificate(settings)))
    # The leaf itself is the trust anchor: no CA bundle is needed inside the container.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    # The certificate is pinned, and it names the public host, not the loopback address dialled.
    context.check_hostname = False
    return context


def health(
    config: ConfigOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 5.0,
) -> None:
    settings = startup_guard(lambda: load_settings(config))
    host = _WILDCARDS.get(settings.server.host, settings.server.host)
    url = httpx.URL(scheme="https", host=host, port=settings.server.port, path="/healthz")
    try:
        context = _context(settings)
        status = httpx.get(url, verify=context, timeout=timeout).status_code
    except (OSError, ssl.SSLError, httpx.HTTPError) as exc:
        typer.echo(f"unhealthy: {url} did not answer over TLS ({type(exc).__name__}).", err=True)
        raise typer.Exit(1) from None
    if status != 200:
        typer.echo(f"unhealthy: {url} answered {status}.", err=True)
        raise typer.Exit(1)
    typer.echo("healthy")
