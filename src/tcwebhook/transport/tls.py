"""The server's TLS context (Mozilla "intermediate" profile) and certificate hot reload."""

from __future__ import annotations

import ctypes
import functools
import ssl
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from tcwebhook.errors import CertificateError
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

_SSL_CTRL_SET_GROUPS_LIST = 92
_SSL_CTRL_GET_MIN_PROTO_VERSION = 130


def build_server_context(certfile: Path, keyfile: Path) -> ssl.SSLContext:
    """A server context: TLS 1.2-1.3, ECDHE+AEAD, X25519/P-256/P-384, ALPN http/1.1."""
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
    _restrict_groups(ctx)
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise CertificateError(
            f"OpenSSL cannot load {certfile} with {keyfile} ({exc}): both must be PEM, the "
            "certificate chain and its matching private key."
        ) from None
    return ctx


def _restrict_groups(ctx: ssl.SSLContext) -> None:
    if _set_groups_list(ctx, ":".join(KEY_EXCHANGE_GROUPS)):
        return
    # Without access to OpenSSL's group list, one safe curve beats OpenSSL's long default list.
    ctx.set_ecdh_curve("prime256v1")
    log.warning("tls.groups_fallback", groups="prime256v1", wanted=",".join(KEY_EXCHANGE_GROUPS))


@functools.cache
def _libssl() -> ctypes.CDLL | None:
    """The libssl the ``_ssl`` module uses, or None when it cannot be reached safely."""
    if sys.implementation.name != "cpython":
        return None
    try:
        import _ssl

        # dlsym on the extension's own handle finds the libssl it was linked against,
        # not some other copy that happens to be on the library path.
        lib = ctypes.CDLL(_ssl.__file__)
        version = lib.OpenSSL_version_num
        lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        lib.SSL_CTX_ctrl.restype = ctypes.c_long
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.ERR_clear_error.argtypes = []
        lib.ERR_clear_error.restype = None
    except (ImportError, AttributeError, OSError):
        return None
    version.argtypes = []
    version.restype = ctypes.c_ulong
    if version() != ssl.OPENSSL_VERSION_NUMBER:
        return None
    return lib


def _ssl_ctx_pointer(ctx: ssl.SSLContext, lib: ctypes.CDLL) -> int | None:
    """The ``SSL_CTX *`` inside ``ctx``, confirmed by reading back two settings through it."""
    # CPython's PySSLContext starts with PyObject_HEAD followed by ``SSL_CTX *ctx``.
    offset = object.__basicsize__
    if type(ctx).__basicsize__ < offset + ctypes.sizeof(ctypes.c_void_p):
        return None
    pointer = ctypes.c_void_p.from_address(id(ctx) + offset).value
    if not pointer:
        return None
    if lib.SSL_CTX_get_options(pointer) != int(ctx.options):
        return None
    if lib.SSL_CTX_ctrl(pointer, _SSL_CTRL_GET_MIN_PROTO_VERSION, 0, None) != ctx.minimum_version:
        return None
    return int(pointer)


def _set_groups_list(ctx: ssl.SSLContext, groups: str) -> bool:
    """Python 3.11 has no set_groups(): call SSL_CTX_set1_groups_list through ctypes."""
    lib = _libssl()
    if lib is None:
        return False
    pointer = _ssl_ctx_pointer(ctx, lib)
    if pointer is None:
        return False
    names = ctypes.create_string_buffer(groups.encode("ascii"))
    if lib.SSL_CTX_ctrl(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, ctypes.addressof(names)) == 1:
        return True
    # A failed call leaves an error on OpenSSL's queue that a later, unrelated call would report.
    lib.ERR_clear_error()
    return False


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
            self._current = context
            self._loaded_digest = pair.digest
            self._failed = None
            self.report = report
            self._last_expiry_warning = None
            log.info("tls.certificate_reloaded", **self._describe(report))
            self._warn_about(report)
            return True

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
        current = self._current
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
