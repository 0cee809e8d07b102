"""The server's TLS context (Mozilla "intermediate" profile) and certificate hot reload.

The key-exchange groups of the profile (X25519, P-256, P-384) come from an OpenSSL configuration
(``openssl.cnf`` next to this module): Python's ssl module can set one group at most, and OpenSSL
reads its configuration once, when ``ssl`` is first imported. So ``tcwebhook serve`` and ``dev``
restart themselves under ``OPENSSL_CONF`` before doing anything else
(``restart_with_openssl_config``), and every server context checks with a handshake that the
groups are in effect; where they are not, it falls back to P-256 alone, still within the profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from tcwebhook.errors import CertificateError

if TYPE_CHECKING:
    from tcwebhook.transport.acme import Challenges
from tcwebhook.transport.certcheck import CertReport, PemPair, check_pem_pair

log = structlog.get_logger(__name__)

# TLS 1.2 suites of the Mozilla "intermediate" profile without the DHE ones: forward secret,
# AEAD only. TLS 1.3 suites are OpenSSL's defaults, which are exactly the intermediate set.
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
KEY_EXCHANGE_GROUPS = ("X25519", "prime256v1", "secp384r1")
ALPN_PROTOCOLS = ("http/1.1",)
OPENSSL_CONFIG = Path(__file__).with_name("openssl.cnf")
# In OpenSSL's default list but not in the profile: a server accepting them is not restricted.
OTHER_GROUPS = ("secp521r1", "X448")
_FALLBACK_GROUP = "prime256v1"


def restart_with_openssl_config() -> None:
    """Replace this process by itself started with ``OPENSSL_CONF`` set to ``OPENSSL_CONFIG``.

    Returns at once when ``OPENSSL_CONF`` is already set (by the restart, or by an operator who
    runs a configuration of their own), and when the restart is impossible; the server context
    then falls back as the module docstring says. Call it first thing in the server commands:
    the new process starts from the beginning with the same arguments and process id.
    """
    if "OPENSSL_CONF" in os.environ or os.name != "posix":
        return
    os.environ["OPENSSL_CONF"] = str(OPENSSL_CONFIG)
    with contextlib.suppress(OSError):
        os.execv(sys.executable, sys.orig_argv)  # noqa: S606 - the same program, same arguments


def build_server_context(certfile: Path, keyfile: Path) -> ssl.SSLContext:
    """A server context: TLS 1.2-1.3, ECDHE+AEAD, X25519/P-256/P-384, ALPN http/1.1.

    Where OpenSSL's configuration does not restrict the groups (a process not started under
    ``OPENSSL_CONFIG``), P-256 alone is allowed instead; ``accepted_groups`` tells which.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    # Stateless tickets are sealed with a key that lives as long as the process and never
    # rotates, which undoes forward secrecy; OP_NO_TICKET keeps resumption in the server's
    # session cache instead (TLS 1.3 then issues cache-backed tickets).
    ctx.options |= ssl.OP_NO_TICKET
    ctx.num_tickets = 1
    # Every suite left is strong, so the client may pick (e.g. ChaCha20 on CPUs without AES).
    ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(list(ALPN_PROTOCOLS))
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise CertificateError(
            f"OpenSSL cannot load {certfile} with {keyfile} ({exc}): both must be PEM, the "
            "certificate chain and its matching private key."
        ) from None
    _restrict_groups(ctx)  # after the certificate: the check is a handshake
    return ctx


def accepted_groups(ctx: ssl.SSLContext) -> tuple[str, ...]:
    """The groups of ``KEY_EXCHANGE_GROUPS + OTHER_GROUPS`` that the server context ``ctx`` accepts.

    Asked by in-memory handshakes (about a millisecond each): Python cannot read the list.
    """
    return tuple(g for g in (*KEY_EXCHANGE_GROUPS, *OTHER_GROUPS) if _accepts_group(ctx, g))


def _accepts_group(ctx: ssl.SSLContext, group: str) -> bool:
    """Whether the server context ``ctx`` (certificate loaded) answers a client offering only ``group``."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    try:
        client.set_ecdh_curve(group)
    except (ValueError, ssl.SSLError):
        return False  # this OpenSSL does not know the group at all
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    hello = client.wrap_bio(client_in, client_out, server_hostname="groups.probe.invalid")
    with contextlib.suppress(ssl.SSLWantReadError):
        hello.do_handshake()
    server_in.write(client_out.read())
    try:
        ctx.wrap_bio(server_in, server_out, server_side=True).do_handshake()
    except ssl.SSLWantReadError:
        return True  # it answered the ClientHello and waits for the client's next flight
    except ssl.SSLError:
        return False  # refused: no group in common
    return True


def _restrict_groups(ctx: ssl.SSLContext) -> None:
    """Keep to the profile's groups: if the OpenSSL configuration does not, allow P-256 alone."""
    if _accepts_group(ctx, OTHER_GROUPS[0]):
        # One safe, universally supported curve beats OpenSSL's long default list.
        ctx.set_ecdh_curve(_FALLBACK_GROUP)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ReloadingServerContext:
    """Owns the SSLContext given to the server and swaps in a renewed certificate when it passes.

    The server keeps ``context`` for its lifetime. A renewed chain is loaded into a fresh context
    and new handshakes are moved onto it from the server-name callback (which OpenSSL runs for
    every ClientHello, with or without SNI); open connections keep the certificate they have.
    Loading into the live context instead would be unsafe: OpenSSL keeps one certificate slot
    per key type, so after an RSA to EC change it would go on serving the old RSA certificate,
    and a failure half-way through would leave a certificate without its key. The swap relies
    on ``context.sni_callback``: do not replace it.
    """

    def __init__(
        self,
        certfile: Path,
        keyfile: Path,
        *,
        trust_store: Path | None = None,
        public_hostname: str | None = None,
        expiry_warning_days: int = 30,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """Check and load the files; raises ``CertificateError`` when they do not pass."""
        self.certfile = certfile
        self.keyfile = keyfile
        self.trust_store = trust_store
        self.public_hostname = public_hostname
        self.expiry_warning_days = expiry_warning_days
        self._clock = clock
        self._lock = threading.Lock()
        self.challenges: Challenges | None = None  # ACME tls-alpn-01, set by the certificate manager
        pair = PemPair.read(certfile, keyfile)
        self.report = self._check(pair)
        context = self._build_matching(pair)
        if context is None:
            raise CertificateError(
                f"{certfile} or {keyfile} changed while being loaded: start the service again "
                "once the renewal has finished."
            )
        self._context = context
        self._current = context
        self._loaded_digest = pair.digest
        self._failed: tuple[str, str] | None = None
        self._last_expiry_warning: datetime | None = None
        context.sni_callback = self._pick_context
        log.info("tls.certificate_loaded", **self._describe(self.report))
        self._warn_about(self.report)

    @property
    def context(self) -> ssl.SSLContext:
        """The context to hand to the server; it stays the same object across reloads."""
        return self._context

    def maybe_reload(self) -> bool:
        """Load the files again if they changed and pass the checks; True when a new chain is live.

        Never raises for a bad replacement: it logs ``tls.reload_failed`` (once per distinct
        problem) and keeps serving the previous certificate. A refused replacement is retried
        on every call, so one that is merely not valid yet is picked up once it is.
        """
        with self._lock:
            try:
                pair = PemPair.read(self.certfile, self.keyfile)
            except CertificateError as exc:
                self._refuse("unreadable", str(exc))
                return False
            if pair.digest == self._loaded_digest:
                self._failed = None
                self._remind_expiry()
                return False
            try:
                report = self._check(pair)
                context = self._build_matching(pair)
            except CertificateError as exc:
                self._refuse(pair.digest, str(exc))
                return False
            if context is None:
                # Renewal still writing the files: the next call sees them settled.
                return False
            self._swap_in(context, pair, report)
            return True

    async def keep_reloading(self, interval: float, failure_event: str = "certificate_reload_failed") -> None:
        """``maybe_reload`` every ``interval`` seconds, forever (run it as a task and cancel it)."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.maybe_reload()  # logs what it loaded or refused
            except Exception:  # a bad renewal must never take the listener down
                log.exception(failure_event)

    def retarget(
        self,
        certfile: Path,
        keyfile: Path,
        *,
        trust_store: Path | None,
        public_hostname: str | None,
        expiry_warning_days: int,
    ) -> None:
        """Serve from other files or with other checks (``[tls]`` changed, SIGHUP).

        Raises ``CertificateError`` for files that do not pass, and then changes nothing. With
        the same settings it is ``maybe_reload``: files replaced in place are picked up at once.
        """
        same = (certfile, keyfile, trust_store, public_hostname, expiry_warning_days) == (
            self.certfile, self.keyfile, self.trust_store, self.public_hostname, self.expiry_warning_days
        )
        if same:
            self.maybe_reload()
            return
        with self._lock:
            pair = PemPair.read(certfile, keyfile)
            report = check_pem_pair(
                pair, trust_store, public_hostname, expiry_warning_days=expiry_warning_days, now=self._clock()
            )
            context = build_server_context(certfile, keyfile)
            self.certfile, self.keyfile, self.trust_store = certfile, keyfile, trust_store
            self.public_hostname, self.expiry_warning_days = public_hostname, expiry_warning_days
            self._swap_in(context, pair, report)

    def _swap_in(self, context: ssl.SSLContext, pair: PemPair, report: CertReport) -> None:
        """New handshakes get ``context`` from now on (called with the lock held)."""
        self._current = context
        self._loaded_digest = pair.digest
        self._failed = None
        self.report = report
        self._last_expiry_warning = None
        log.info("tls.certificate_reloaded", **self._describe(report))
        self._warn_about(report)

    def _check(self, pair: PemPair) -> CertReport:
        return check_pem_pair(
            pair,
            self.trust_store,
            self.public_hostname,
            expiry_warning_days=self.expiry_warning_days,
            now=self._clock(),
        )

    def _build_matching(self, pair: PemPair) -> ssl.SSLContext | None:
        """Build a context from the files, or None when they no longer hold the checked bytes."""
        context = build_server_context(self.certfile, self.keyfile)
        try:
            unchanged = PemPair.read(self.certfile, self.keyfile).digest == pair.digest
        except CertificateError:
            unchanged = False
        return context if unchanged else None

    def _pick_context(
        self, ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        challenge = self.challenges.context_for(server_name) if self.challenges is not None else None
        # An ACME tls-alpn-01 validation in progress for this name gets its validation
        # certificate (RFC 8737). Python cannot see the client's ALPN offer here, so for the few
        # seconds of a validation other clients naming this host get it too; http-01 avoids that.
        current = challenge or self._current
        if ssl_object.context is not current:
            ssl_object.context = current

    def _refuse(self, state: str, message: str) -> None:
        if self._failed == (state, message):
            return
        self._failed = (state, message)
        log.error(
            "tls.reload_failed",
            certfile=str(self.certfile),
            error=message,
            action="still serving the previous certificate",
        )

    def _remind_expiry(self) -> None:
        now = self._clock()
        if self.report.not_after - now >= timedelta(days=self.expiry_warning_days):
            return
        if self._last_expiry_warning and now - self._last_expiry_warning < timedelta(days=1):
            return
        self._last_expiry_warning = now
        days = (self.report.not_after - now) // timedelta(days=1)
        log.warning(
            "tls.certificate_expiring",
            certfile=str(self.certfile),
            not_after=self.report.not_after.isoformat(),
            days_left=days,
        )

    def _warn_about(self, report: CertReport) -> None:
        for warning in report.warnings:
            log.warning("tls.certificate_warning", certfile=str(self.certfile), detail=warning)
        if report.not_after - self._clock() < timedelta(days=self.expiry_warning_days):
            self._last_expiry_warning = self._clock()

    def _describe(self, report: CertReport) -> dict[str, object]:
        return {
            "certfile": str(self.certfile),
            "subject": report.subject,
            "sans": list(report.sans),
            "issuer": report.issuer,
            "not_after": report.not_after.isoformat(),
            "days_left": report.days_left,
            "fingerprint_sha256": report.fingerprint_sha256,
        }
