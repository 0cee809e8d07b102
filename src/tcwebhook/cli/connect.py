"""``tcwebhook connect``: set the company's Tradecloud webhooks from the configuration.

Exit codes: 0 done (or nothing to change), 1 refused (the endpoint would fail Tradecloud's
delivery, or a rotation could not be confirmed), 3 start-up.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console

from tcwebhook.audit import cli_entry, record_in_store
from tcwebhook.cli.inbox import command_settings
from tcwebhook.cli.options import ConfigOption, startup_guard
from tcwebhook.config import ENV_PREFIX, Settings, load_settings
from tcwebhook.errors import StartupError
from tcwebhook.filemodes import write_atomic

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

_TOKENS = re.compile(r"(?ms)^(?P<lead>[ \t]*bearer_tokens[ \t]*=[ \t]*)\[(?P<items>.*?)\]")
_STRINGS = re.compile(r'"([^"\\]*)"|\'([^\']*)\'')


def register(app: typer.Typer) -> None:
    app.command(help="Read or set the company's Tradecloud webhook settings (order, documents, shipment).")(connect)


def connect(
    config: ConfigOption = None,
    show: Annotated[bool, typer.Option("--show", help="Print the current settings (secrets masked).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would change; change nothing.")] = False,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Rotate the bearer token without a window of refused webhooks.")
    ] = False,
    pid: Annotated[
        int | None, typer.Option(help="--rotate: the running `serve` to send SIGHUP to (reloads [auth]).")
    ] = None,
    wait: Annotated[float, typer.Option(help="--rotate: seconds to wait for the receiver to accept the token.")] = 60.0,
    ca_bundle: Annotated[
        Path | None,
        typer.Option(help="Trust this CA in the pre-flight TLS check (internal PKI; Tradecloud needs a public CA)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Set order, order-documents and shipment webhooks: URL, credentials, format, event names."""
    settings = command_settings(config)
    if rotate:
        _rotate(config, settings, pid=pid, wait=wait, ca_bundle=ca_bundle, json_output=json_output)
        return
    current, wanted, lines = startup_guard(lambda: asyncio.run(_compare(settings)))
    from tcwebhook.tradecloud_api.webhooks import mask

    if show:
        _print({"current": mask(current)} if json_output else mask(current), json_output)
        return
    if dry_run or not lines:
        if json_output:
            _print({"changes": lines, "wanted": mask(wanted)}, True)
        else:
            out.print("\n".join(lines) if lines else "Tradecloud's webhook settings are up to date.")
        return
    _preflight(settings, ca_bundle, None)
    applied = startup_guard(lambda: asyncio.run(_apply(settings, wanted, current)))
    asyncio.run(record_in_store(settings, cli_entry("connect.apply", ", ".join(applied), changes=lines)))
    if json_output:
        _print({"changes": lines, "applied": applied}, True)
    else:
        out.print("\n".join(lines))
        out.print(f"Set: {', '.join(applied)}.")


async def _compare(settings: Settings, bearer: str | None = None) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    from tcwebhook.tradecloud_api.client import TradecloudClient
    from tcwebhook.tradecloud_api.webhooks import WebhookSettingsApi, changes, desired

    wanted = desired(settings, bearer=bearer)
    async with TradecloudClient(settings.tradecloud) as client:
        current = await WebhookSettingsApi(client, _company(settings)).current()
    return current, wanted, changes(current, wanted)


async def _apply(settings: Settings, wanted: dict[str, Any], current: dict[str, Any]) -> list[str]:
    from tcwebhook.tradecloud_api.client import TradecloudClient
    from tcwebhook.tradecloud_api.webhooks import WebhookSettingsApi, changes

    applied: list[str] = []
    async with TradecloudClient(settings.tradecloud) as client:
        api = WebhookSettingsApi(client, _company(settings))
        for section, body in wanted.items():
            if changes({section: current.get(section) or {}}, {section: body}):
                await api.apply(section, body)
                applied.append(section)
    return applied


def _company(settings: Settings) -> str:
    if not settings.tradecloud.configured:
        raise StartupError("connect needs [tradecloud] username and password of a user with the admin role.")
    if not settings.connect.company_id:
        raise StartupError("connect needs [connect] company_id: the company's Tradecloud id (portal: My Company).")
    return settings.connect.company_id


def _preflight(settings: Settings, ca_bundle: Path | None, bearer: str | None) -> None:
    """Refuse unless Tradecloud could deliver: check-tls against the public URL, authenticated."""
    from tcwebhook.simulator.credentials import Credentials
    from tcwebhook.simulator.tlscheck import Status, check_tls
    from tcwebhook.tradecloud_api.webhooks import ORDER_EVENTS, credentials, webhook_url

    creds = startup_guard(lambda: credentials(settings, bearer))
    url = startup_guard(lambda: webhook_url(settings, ORDER_EVENTS))
    if "bearerToken" in creds:
        probe = Credentials.parse(token=creds["bearerToken"])
    else:
        basic = creds["basicAuthCredentials"]
        probe = Credentials.parse(basic=f"{basic['username']}:{basic['password']}")
    report = startup_guard(lambda: check_tls(url, ca_bundle=ca_bundle, credentials=probe))
    if report.ok:
        return
    err.print(f"[red]refused:[/red] Tradecloud would fail to deliver to {url}; nothing was changed.")
    for check in report.checks:
        if check.status is Status.FAIL:
            err.print(f"  {check.name}: {check.detail}")
    raise typer.Exit(1)


# -- rotation ------------------------------------------------------------------------------------


def _tokens_in(text: str) -> list[str] | None:
    """The bearer tokens of the config text (TOML basic or literal strings), or None without the key."""
    match = _TOKENS.search(text)
    if match is None:
        return None
    return [a or b for a, b in _STRINGS.findall(match.group("items"))]


def _with_tokens(text: str, tokens: list[str]) -> str:
    rendered = "[" + ", ".join(f'"{t}"' for t in tokens) + "]"
    return _TOKENS.sub(lambda m: m.group("lead") + rendered, text, count=1)


def _write_config(path: Path, text: str) -> None:
    """The config rewritten in place: same owner, group and mode (``root:tcwebhook 0640`` stays so)."""
    st = path.stat()
    try:
        write_atomic(path, text.encode("utf-8"), mode=stat.S_IMODE(st.st_mode), owner=(st.st_uid, st.st_gid))
    except PermissionError:
        raise StartupError(
            f"Cannot rewrite {path} with its owner and group kept: run this as the file's owner or as root."
        ) from None


def _reload(pid: int | None) -> None:
    if pid is None:
        err.print("Reload the receiver now (SIGHUP to `serve`, or restart it) so it accepts the new token.")
        return
    os.kill(pid, signal.SIGHUP)


def _accepted(settings: Settings, token: str, ca_bundle: Path | None, wait: float) -> bool:
    """Whether the receiver at the public URL accepts ``token`` (its /metrics takes the webhook credentials)."""
    from tcwebhook.tradecloud_api.webhooks import public_base

    verify: Any = str(ca_bundle) if ca_bundle else True
    deadline = time.monotonic() + wait
    while True:
        try:
            answer = httpx.get(
                public_base(settings) + "/metrics",
                headers={"Authorization": f"Bearer {token}"},
                verify=verify,
                timeout=5,
            )
            if answer.status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def _rotate(
    config: Path | None, settings: Settings, *, pid: int | None, wait: float, ca_bundle: Path | None, json_output: bool
) -> None:
    """New token accepted by the receiver first, then pushed to Tradecloud, then the old one retired."""
    if config is None or not config.is_file():
        raise StartupError("--rotate edits the config file: give it with --config.")
    if any(k.upper().startswith(f"{ENV_PREFIX}AUTH__BEARER_TOKENS") for k in os.environ):
        raise StartupError(
            f"{ENV_PREFIX}AUTH__BEARER_TOKENS overrides the config file: rotate the tokens in the environment instead."
        )
    text = config.read_text(encoding="utf-8")
    old = _tokens_in(text)
    if not old:
        raise StartupError(f"--rotate needs a bearer_tokens = [...] list with a token in {config} ([auth]).")
    startup_guard(lambda: asyncio.run(_compare(settings)))  # Tradecloud reachable and admin rights, before any change
    new = secrets.token_urlsafe(32)
    # 1. The receiver accepts both: no event refused whichever token Tradecloud sends meanwhile.
    startup_guard(lambda: _write_config(config, _with_tokens(text, [new, *old])))
    _reload(pid)
    if not _accepted(settings, new, ca_bundle, wait):
        err.print(
            f"[red]not confirmed:[/red] the receiver does not accept the new token yet; Tradecloud still has the old "
            f"one, which stays valid. The new token was added to {config}: reload the receiver and run --rotate again."
        )
        raise typer.Exit(1)
    # 2. Tradecloud gets the new token (the TLS and authenticated pre-flight use it too).
    rotated = load_settings(config)
    _preflight(rotated, ca_bundle, new)
    current, wanted, _lines = startup_guard(lambda: asyncio.run(_compare(rotated, bearer=new)))
    applied = startup_guard(lambda: asyncio.run(_apply(rotated, wanted, current)))
    # 3. The token Tradecloud used until now is retired; other configured tokens stay.
    sent = {str(body.get("bearerToken")) for body in current.values() if body.get("bearerToken")}
    retired = [t for t in old if t in sent] or old[:1]
    kept = [t for t in old if t not in retired]
    startup_guard(lambda: _write_config(config, _with_tokens(config.read_text(encoding="utf-8"), [new, *kept])))
    _reload(pid)
    result = {"rotated": True, "applied": applied, "retired": len(retired), "config": str(config)}
    asyncio.run(record_in_store(rotated, cli_entry("connect.rotate", ", ".join(applied), retired=len(retired),
                                                   config=str(config))))
    if json_output:
        _print(result, True)
    else:
        out.print(f"Rotated: Tradecloud now sends the new token ({', '.join(applied)}); the old one is retired.")


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.print_json(orjson.dumps(data).decode())
