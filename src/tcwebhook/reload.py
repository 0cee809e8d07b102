"""SIGHUP: the running ``serve`` re-reads its ``[auth]`` and ``[tls]`` sections.

Credentials rotate without a restart and so without a lost event: put the new token beside the
old one, reload, switch Tradecloud to the new one, remove the old one, reload again. A new
configuration is read and checked whole before anything changes; one that does not pass is
refused with one log line and the running configuration stays. Other sections need a restart,
and a reload that changes them says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from tcwebhook.audit import AuditEntry, AuditLog, AuditStore, cli_actor
from tcwebhook.auth.oauth import OAuthValidator
from tcwebhook.config import Settings
from tcwebhook.errors import StartupError
from tcwebhook.logs import add_secrets, secret_values
from tcwebhook.receiver.app import Receiver
from tcwebhook.transport.acme import CertificateManager
from tcwebhook.transport.systemd import Notifier
from tcwebhook.transport.tls import ReloadingServerContext

log = structlog.get_logger(__name__)

RELOADED_SECTIONS = ("auth", "tls")


class Reloader:
    """Applies a re-read configuration's credentials and certificate to the running server."""

    def __init__(
        self,
        settings: Settings,
        load: Callable[[], Settings],
        receiver: Receiver,
        tls: ReloadingServerContext | None,
        notifier: Notifier | None = None,
        audit: AuditStore | None = None,
    ) -> None:
        self.settings = settings
        self._load = load
        self._receiver = receiver
        self._tls = tls
        self._notifier = notifier or Notifier()
        self._pending: set[asyncio.Task[None]] = set()
        self._audit_store = audit

    def reload(self) -> bool:
        """Read the configuration again and apply ``[auth]`` and ``[tls]``; False when refused."""
        self._notifier.reloading("re-reading the configuration")
        try:
            new = self._load()
            if new.tls.acme:
                # The file names no certificate under ACME; serve() keeps its files in data_dir/acme.
                new = CertificateManager(new).with_certificate()
            if not new.auth.configured:
                raise StartupError(
                    "No sender credentials are configured: set [auth] bearer_tokens or add an [[auth.basic]] entry."
                )
            oauth = self._receiver.oauth
            if new.auth.oauth != self.settings.auth.oauth:
                oauth = OAuthValidator(new.auth.oauth) if new.auth.oauth is not None else None
            if self._tls is not None and new.tls.certfile is not None and new.tls.keyfile is not None:
                # Last of the steps that can fail: it swaps the certificate when it passes.
                self._tls.retarget(
                    new.tls.certfile,
                    new.tls.keyfile,
                    trust_store=new.tls.trust_store,
                    public_hostname=new.server.public_hostname,
                    expiry_warning_days=new.tls.expiry_warning_days,
                )
        except Exception as exc:  # whatever is wrong with the new file, the server keeps running
            log.error("config_reload_refused", error=str(exc), action="keeping the running configuration")
            self._audit("refused", error=str(exc))
            self._notifier.reloaded("configuration reload refused; the running configuration is kept")
            return False
        add_secrets(new)  # before the switch: a new token is scrubbed from its first request on
        self._receiver.use_auth(new.auth, oauth)
        stale = _restart_needed(self.settings, new)
        changed = _changed(self.settings, new)
        if stale:
            log.warning("config_reload_partial", sections=stale, action="restart to apply these sections")
        self.settings = new
        log.info(
            "config_reloaded",
            bearer_tokens=len(new.auth.bearer_tokens),
            basic_users=len(new.auth.basic),
            oauth=new.auth.oauth is not None,
            certfile=str(new.tls.certfile) if new.tls.certfile else None,
        )
        self._audit("ok", changed_sections=changed, applied=list(RELOADED_SECTIONS), restart_needed=stale)
        self._notifier.reloaded("configuration reloaded")
        return True

    def _audit(self, outcome: str, **detail: object) -> None:
        """Record the reload in the audit log (what changed, never a value), off the signal handler."""
        if self._audit_store is None:
            return
        actor, source = cli_actor()
        entry = AuditEntry(actor=actor, source=f"sighup@{source.partition('@')[2]}", action="config.reload",
                           target="[auth] [tls]", outcome=outcome, detail=detail)
        task = asyncio.get_running_loop().create_task(
            AuditLog(self._audit_store, secret_values(self.settings)).record(entry)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


def _changed(old: Settings, new: Settings) -> list[str]:
    """The sections whose values differ (names only: values may be secrets)."""
    before, after = old.model_dump(), new.model_dump()
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def _restart_needed(old: Settings, new: Settings) -> list[str]:
    before = old.model_dump(exclude=set(RELOADED_SECTIONS))
    after = new.model_dump(exclude=set(RELOADED_SECTIONS))
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
