"""``serve``, ``dev``, ``init`` and ``check-config``: running the receiver and setting it up."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tcwebhook.cli.options import ConfigOption, startup_guard
from tcwebhook.config import DEFAULT_CONFIG_FILE, ENV_PREFIX, Settings, config_source, load_settings
from tcwebhook.errors import StartupError
from tcwebhook.filemodes import PRIVATE_FILE, open_replace
from tcwebhook.logs import configure_logging
from tcwebhook.terminal import markup_safe

console = Console(highlight=False, soft_wrap=True)


def _serve(
    settings: Settings, banner: Callable[[Any, Any], None] | None = None, reload: Callable[[], Settings] | None = None
) -> None:
    from tcwebhook.service import serve

    configure_logging(settings)
    startup_guard(lambda: serve(settings, banner, reload))


def register(app: typer.Typer) -> None:
    app.command(help="Serve the webhook endpoints over HTTPS (production).")(serve)
    app.command(help="Serve with a local development CA and generated credentials; no config needed.")(dev)
    app.command(help="Write a commented example config with freshly generated secrets.")(init)
    app.command("check-config", help="Run the start-up checks of `serve` without starting the server.")(check_config)


def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Override [server] host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override [server] port.")] = None,
) -> None:
    overrides = {"server.host": host, "server.port": port}
    if config_source(config) is None and not any(k.upper().startswith(ENV_PREFIX) for k in os.environ):
        # Defaults alone would serve nothing useful, and would create an empty inbox here.
        startup_guard(_no_configuration)
    settings = startup_guard(lambda: load_settings(config, **overrides))
    # SIGHUP reads the same file, flags and environment again.
    _serve(settings, reload=lambda: load_settings(config, **overrides))


def _no_configuration() -> None:
    raise StartupError(
        f"no configuration found ({DEFAULT_CONFIG_FILE} is not in {Path.cwd()} and no --config was given); "
        "run `tcwebhook init`, or `tcwebhook dev` for a local trial."
    )


def check_config(config: ConfigOption = None) -> None:
    from tcwebhook.preflight import preflight
    from tcwebhook.service import check, check_sinks

    settings = startup_guard(lambda: load_settings(config))
    report = startup_guard(lambda: check(settings))
    found = startup_guard(lambda: preflight(settings))
    reach = startup_guard(lambda: check_sinks(settings))
    source = config_source(config)
    console.print(f"[green]OK[/green] configuration {markup_safe(source or 'from defaults and the environment')}"
                  " is valid", end="")
    if report is None:
        console.print(
            f"; no certificate yet: serve orders one for {markup_safe(settings.server.public_hostname)} "
            f"from {markup_safe(settings.tls.acme_directory)}"
        )
    else:
        console.print(
            f": certificate for {markup_safe(', '.join(report.sans))} "
            f"({report.key_type} {report.key_size}) valid {report.days_left} more days"
        )
    console.print(f"  {markup_safe(found.store)}")
    targets = {sink.name: sink.target for sink in settings.sinks}
    for sink in reach:
        console.print(
            f"  sink {markup_safe(sink.name)} ({sink.type} {markup_safe(targets.get(sink.name, ''))}): "
            f"{markup_safe(sink.detail)}"
        )
    for warning in [*(report.warnings if report else []), *found.warnings]:
        console.print(f"[yellow]warning[/yellow] {markup_safe(warning)}")
    if settings.tls.acme:
        from tcwebhook.cli.certificate import describe
        from tcwebhook.transport.acme import CertificateManager

        info = describe(CertificateManager(settings))
        if info.get("next_renewal"):
            console.print(f"ACME: next renewal {info['next_renewal']}")
        if info["last_attempt_ok"] is False:
            console.print(f"[yellow]warning[/yellow] the last ACME renewal failed ({info['last_attempt']}): "
                          f"{markup_safe(str(info['last_error']))}")


def _dev_credentials(path: Path) -> dict[str, str]:
    if path.is_file():
        data: dict[str, str] = json.loads(path.read_text())
        if "console_password" not in data:  # made by a version without the console
            data["console_password"] = secrets.token_urlsafe(18)
            _save_credentials(path, data)
        return data
    data = {
        "bearer_token": secrets.token_urlsafe(32),
        "basic_username": "tradecloud",
        "basic_password": secrets.token_urlsafe(24),
        "console_password": secrets.token_urlsafe(18),
    }
    return _save_credentials(path, data)


def _save_credentials(path: Path, data: dict[str, str]) -> dict[str, str]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = open_replace(path, PRIVATE_FILE)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    return data


def dev(
    config: ConfigOption = None,
    data_dir: Annotated[Path, typer.Option(help="Where the dev CA, credentials, inbox and outbox live.")] = Path(
        "data"
    ),
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8443,
    console_port: Annotated[int, typer.Option(help="Port of the operator console.")] = 8444,
) -> None:
    from tcwebhook.transport.devca import ensure_dev_pki

    dev_dir = data_dir / "dev"
    pki = startup_guard(lambda: ensure_dev_pki(dev_dir))
    creds = _dev_credentials(dev_dir / "credentials.json")
    overrides: dict[str, Any] = {
        "data_dir": str(data_dir),
        "server.host": host,
        "server.port": port,
        "server.public_hostname": None,
        "tls.certfile": str(pki.cert),
        "tls.keyfile": str(pki.key),
        "tls.trust_store": str(pki.ca_cert),
        "auth.bearer_tokens": [creds["bearer_token"]],
        "auth.basic": [{"username": creds["basic_username"], "password": creds["basic_password"]}],
        "logging.format": "console",
        "console.enabled": True,
        "console.host": host,
        "console.port": console_port,
        "console.users": [{"username": "admin", "password": creds["console_password"], "role": "operator"}],
    }
    settings = startup_guard(lambda: load_settings(config, **overrides))
    if not settings.sinks:
        outbox = data_dir / "outbox"
        settings = startup_guard(
            lambda: load_settings(
                config, **overrides, sinks=[{"name": "outbox", "type": "files", "directory": str(outbox)}]
            )
        )

    def banner(server: Any, console_listener: Any) -> None:
        url = f"https://localhost:{server.bound_port}"
        orders = url + settings.routes.orders
        ca = str(pki.ca_cert.resolve())
        token = creds["bearer_token"]
        sample = json.dumps(
            {
                "eventName": "OrderIssuedByBuyer",
                "orderEvent": {"orderId": "demo-order-1", "buyerOrder": {"purchaseOrderNumber": "PO-1"}, "lines": []},
                "meta": {"messageId": "00000000-0000-4000-8000-000000000001"},
            }
        )
        console.print("\n[bold]tcwebhook development server[/bold]")
        plain(f"  orders endpoint    {orders}")
        plain(f"  shipments endpoint {url + settings.routes.shipments}")
        plain(f"  development CA     {ca}")
        plain(f"  bearer token       {token}")
        plain(f"  basic credentials  {creds['basic_username']}:{creds['basic_password']}")
        plain(f"  inbox              {settings.store_location}")
        if console_listener is not None:
            plain(f"  operator console   https://localhost:{console_listener.bound_port}/")
        plain(f"  console login      admin / {creds['console_password']}")
        for sink in settings.sinks:
            plain(f"  sink {sink.name:<13} {sink.type} {sink.target}")
        plain("\nSend a sample event:")
        plain(
            f"  curl --cacert {shlex.quote(ca)} -H 'Authorization: Bearer {token}' "
            f"-H 'Content-Type: application/json' --data {shlex.quote(sample)} {orders}"
        )
        command = shlex.quote(_command_name())
        plain(f"  {command} send {orders} --ca-bundle {shlex.quote(ca)} --token {token} --count 10\n")

    _serve(settings, banner)


def plain(text: str) -> None:
    """Print without Rich markup: paths, secrets and JSON may hold brackets."""
    console.print(text, markup=False)


def _command_name() -> str:
    """How to run this tcwebhook from the current directory: a virtualenv's bin is rarely on PATH."""
    installed = Path(sys.executable).parent / "tcwebhook"
    on_path = shutil.which("tcwebhook")
    if not installed.is_file() or (on_path is not None and Path(on_path).resolve() == installed.resolve()):
        return "tcwebhook"
    relative = os.path.relpath(installed)
    return relative if not relative.startswith("..") else str(installed)


_EXAMPLE = """\
# tcwebhook configuration. Every key can also be set as TCWEBHOOK_<SECTION>__<KEY>,
# e.g. TCWEBHOOK_SERVER__PORT=9443 (lists and tables as JSON).
# Relative paths in this file are relative to this file's folder, whatever the working directory.

# Where the inbox and other state live (here: a folder "data" beside this file).
data_dir = "data"

[server]
host = "0.0.0.0"
port = 8443
# The name Tradecloud uses to reach you; checked against the certificate's SANs at start-up.
# public_hostname = "webhooks.example.com"
max_body_bytes = 10485760

[tls]
# A CA-issued certificate (Tradecloud refuses self-signed ones): leaf first, then intermediates.
certfile = "/etc/tcwebhook/fullchain.pem"
keyfile = "/etc/tcwebhook/privkey.pem"
# PEM bundle to verify our own chain with instead of the system roots (internal PKI).
# trust_store = "/etc/tcwebhook/internal-ca.pem"
# Renewed certificate files are picked up without a restart, checked this often (seconds).
reload_interval = 30

[auth]
# Configure the same value in the Tradecloud portal (Webhook Integration, Bearer token).
# Several values may be valid at once: add the new one, switch the portal, then remove the old.
bearer_tokens = ["{token}"]

# Or Basic authentication (several entries allowed, for rotation).
[[auth.basic]]
username = "tradecloud"
password = "{password}"

[store]
# url = "sqlite:///data/inbox.db"
# Several receivers and workers on several machines share one PostgreSQL database instead
# (libpq URL; the password may also come from TCWEBHOOK_STORE__URL or PGPASSWORD):
# url = "postgresql://tcwebhook:PASSWORD@db.internal:5432/tcwebhook?sslmode=verify-full"
# pool_max = 8
# synchronous_commit = "on"     # or "remote_write" / "remote_apply" with a synchronous standby
# retention = "30d"             # delete delivered events after this long (tcwebhook db prune)
# audit_retention = "400d"      # expire audit entries after this long (the chain stays verifiable)

[routes]
orders = "/tradecloud/orders"
shipments = "/tradecloud/shipments"

[delivery]
# "async": store, answer 202, deliver in the background with retries (default).
# "sync": run the sinks before answering (200 / 400 / 503).
mode = "async"

# Where events go. Uncomment one or more.
# [[sinks]]
# name = "erp-files"
# type = "files"
# directory = "/var/spool/erp-import"

# [[sinks]]
# name = "middleware"
# type = "http"
# url = "https://erp.internal.example/api/tradecloud"
# bearer_token = "..."

# [[sinks]]
# name = "handler"
# type = "python"
# callable = "mycompany.erp:handle_event"

# [tradecloud]
# api_base = "https://api.accp.tradecloud1.com/v2"
# username = "integration@example.com"
# password = "..."
"""


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("tcwebhook.toml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    if path.exists() and not force:
        print(f"tcwebhook: {path} already exists; use --force to overwrite it.", file=sys.stderr)
        raise typer.Exit(1)
    text = _EXAMPLE.replace("{token}", secrets.token_urlsafe(32)).replace("{password}", secrets.token_urlsafe(24))
    path.parent.mkdir(parents=True, exist_ok=True)
    # open() applies the mode only when it creates the file: --force over an old one sets it too.
    fd = open_replace(path, PRIVATE_FILE)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    plain(
        f"wrote {path} (mode 0600) with new secrets; set [tls] certfile/keyfile, then "
        f"`tcwebhook check-config --config {path}`"
    )
