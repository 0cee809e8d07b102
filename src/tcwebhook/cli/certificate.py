"""``tcwebhook certificate …``: the served certificate, configured or ACME-managed.

``status`` shows issuer, names, expiry, days left and the chain check of serve for a certificate
named in [tls] certfile/keyfile; for ([tls] acme = true) the next renewal and the last attempt's
outcome. ``renew`` forces an order: a running ``serve`` on the same data directory is asked to do it
(it holds the challenge ports), otherwise the command orders itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import socket
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tcwebhook.cli.options import ConfigOption, startup_guard
from tcwebhook.config import Settings, load_settings
from tcwebhook.errors import CertificateError, StartupError
from tcwebhook.logs import configure_logging
from tcwebhook.terminal import markup_safe
from tcwebhook.transport.acme import (
    RENEW_REQUEST,
    AcmeError,
    CertificateManager,
    http01_listener,
    tls_alpn01_listener,
)

certificate_app = typer.Typer(
    rich_markup_mode="markdown",
    help="The certificate tcwebhook serves: its names, expiry and chain; and the one it renews (ACME).",
    no_args_is_help=True,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


def register(app: typer.Typer) -> None:
    app.add_typer(certificate_app, name="certificate")


def _manager(config: Any) -> CertificateManager:
    settings = startup_guard(lambda: load_settings(config))
    if not settings.tls.acme:
        err.print(
            "tcwebhook: [tls] acme is not enabled in this configuration; the certificate is managed by hand.",
            markup=False,
        )
        raise typer.Exit(3)
    return startup_guard(lambda: CertificateManager(settings))


def describe(manager: CertificateManager) -> dict[str, Any]:
    """What ``status`` shows (and check-config reports)."""
    cert = manager.files.certificate()
    status = manager.files.read_status()
    info: dict[str, Any] = {
        "hostname": manager.hostname,
        "directory": manager.settings.tls.acme_directory,
        "challenge": manager.settings.tls.acme_challenge,
        "certfile": str(manager.files.cert),
        "present": cert is not None,
        "last_attempt": status.get("last_attempt"),
        "last_attempt_ok": status.get("ok"),
        "last_error": status.get("error"),
    }
    if cert is not None:
        renewal = manager.renewal_time()
        info.update(
            issuer=cert.issuer.rfc4514_string(),
            names=[n.value for n in _sans(cert)],
            not_after=cert.not_valid_after_utc.isoformat(),
            days_left=(cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days,
            next_renewal=renewal.isoformat() if renewal else None,
            due=manager.due(),
        )
    return info


def _sans(cert: Any) -> list[Any]:
    from cryptography import x509

    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


@certificate_app.command("status")
def status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Issuer, names, expiry, days left and the chain check of the served certificate.

    With ACME also the next renewal and the last attempt; exit 1 when the chain check fails.
    """
    settings = startup_guard(lambda: load_settings(config))
    if settings.tls.acme:
        info = describe(startup_guard(lambda: CertificateManager(settings)))
    else:
        info = describe_configured(settings)
    if as_json:
        out.print_json(json.dumps(info))
    else:
        table = Table(show_header=False, box=None)
        for key, value in info.items():
            shown = ", ".join(value) if isinstance(value, list) else value
            table.add_row(key.replace("_", " "), "-" if shown is None else markup_safe(shown))
        out.print(table)
        if settings.tls.acme and not info["present"]:
            out.print("No certificate yet: `tcwebhook serve` orders one at start-up.")
    if info.get("chain_ok") is False:
        raise typer.Exit(1)


def describe_configured(settings: Settings) -> dict[str, Any]:
    """What ``status`` shows for the certificate named in ``[tls]``: the file, then the checks of serve."""
    from cryptography import x509

    from tcwebhook.transport.certcheck import check_certificate_setup

    tls = settings.tls
    if tls.certfile is None or tls.keyfile is None:
        err.print(
            "tcwebhook: no certificate is configured: set [tls] certfile and keyfile, or [tls] acme = true.",
            markup=False,
        )
        raise typer.Exit(3)
    info: dict[str, Any] = {"certfile": str(tls.certfile), "keyfile": str(tls.keyfile)}
    try:
        leaf = x509.load_pem_x509_certificate(tls.certfile.read_bytes())
    except (OSError, ValueError) as exc:
        info.update(present=False, chain_ok=False, chain=f"cannot read the certificate ({exc})")
        return info
    info.update(
        present=True,
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        names=[str(n.value) for n in _sans(leaf)],
        not_after=leaf.not_valid_after_utc.isoformat(),
        days_left=(leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)).days,
    )
    try:
        report = check_certificate_setup(
            tls.certfile,
            tls.keyfile,
            tls.trust_store,
            settings.server.public_hostname,
            expiry_warning_days=tls.expiry_warning_days,
        )
    except CertificateError as exc:
        info.update(chain_ok=False, chain=str(exc))
        return info
    verified_by = str(tls.trust_store) if tls.trust_store else "the system roots"
    info.update(
        chain_ok=True,
        chain=" → ".join(report.chain) + f" (verified against {verified_by})",
        key=f"{report.key_type} {report.key_size}",
        warnings=report.warnings or None,
    )
    return info


@certificate_app.command("renew")
def renew(
    config: ConfigOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the new certificate.")] = 300.0,
) -> None:
    """Order a new certificate now (through the running serve, or directly when none runs)."""
    manager = _manager(config)
    settings = manager.settings
    configure_logging(settings)
    before = manager.files.read_status().get("last_attempt")
    if _port_in_use(settings):
        manager.files.prepare()
        (manager.files.directory / RENEW_REQUEST).write_text("requested\n")
        deadline = time.monotonic() + timeout
        while manager.files.read_status().get("last_attempt") == before:
            if time.monotonic() > deadline:
                err.print("tcwebhook: the running serve did not renew in time; see its log (acme.renewal_failed).")
                raise typer.Exit(1)
            time.sleep(0.5)
        result = manager.files.read_status()
    else:
        try:
            asyncio.run(_order(manager))
        except AcmeError as exc:
            err.print(f"tcwebhook: renewal failed: {markup_safe(exc)}")
            raise typer.Exit(1) from None
        except StartupError as exc:
            err.print(f"tcwebhook: {exc}")
            raise typer.Exit(3) from None
        result = manager.files.read_status()
    if not result.get("ok"):
        err.print(f"tcwebhook: renewal failed: {markup_safe(result.get('error'))}")
        raise typer.Exit(1)
    info = describe(manager)
    names = ", ".join(info.get("names", []))
    out.print(f"[green]renewed[/green] certificate for {names}, valid until {info.get('not_after')}")


async def _order(manager: CertificateManager) -> None:
    s = manager.settings
    if s.tls.acme_challenge == "http-01":
        async with http01_listener(s.server.host, s.server.http_port, manager.challenges, s.server):
            await asyncio.to_thread(manager.obtain, force=True)
    else:
        async with tls_alpn01_listener(s.server.host, s.server.port, manager.challenges, manager.hostname):
            await asyncio.to_thread(manager.obtain, force=True)


def _port_in_use(settings: Settings) -> bool:
    """Whether a serve holds the webhook port (then it answers the challenges, not us)."""
    host, port = settings.server.host, settings.server.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, port))
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE
    return False
