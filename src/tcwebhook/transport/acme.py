"""Certificates that get themselves: ACME (RFC 8555) orders and renewals for ``public_hostname``.

The protocol is the ``acme`` package's (certbot's client library); this module only keeps the
files, answers the challenges and decides when to order::

    data_dir/acme/  (0700)
        account.key   the ACME account's private key (PEM, 0600)
        account.json  the account's URL at the CA
        cert.pem      the issued chain, leaf first (0600)   ← [tls] certfile
        key.pem       its private key (0600)                 ← [tls] keyfile
        status.json   the last renewal attempt and its error (read by check-config)
        lock          held while ordering: several processes on one data_dir order once

Challenges: ``tls-alpn-01`` is answered on the webhook port itself (RFC 8737), ``http-01`` on a
plain-HTTP listener that serves only ``/.well-known/acme-challenge/`` (webhooks never go over
plain HTTP). An issued chain goes through the same start-up checks as a configured one, then
through the hot-reload path; a failed order leaves the current certificate in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import ssl
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import structlog
from acme import challenges, client, messages
from acme import errors as acme_errors
from acme.crypto_util import make_csr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier
from josepy.jwk import JWK, JWKRSA

from tcwebhook.backoff import Backoff
from tcwebhook.config import Settings
from tcwebhook.errors import StartupError, TcwebhookError
from tcwebhook.filemodes import write_atomic

log = structlog.get_logger(__name__)

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
ACME_TLS_ALPN = "acme-tls/1"
_ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # id-pe-acmeIdentifier, RFC 8737 §3
_HTTP01_PREFIX = "/.well-known/acme-challenge/"
ORDER_TIMEOUT = 180.0  # seconds for one order: challenge validation and finalisation


class AcmeError(TcwebhookError):
    """An order or renewal failed (the CA refused, is down, or a challenge was not validated)."""


# -- tls-alpn-01: not among the acme package's challenge types, so declared here -----------------


@challenges.ChallengeResponse.register
class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """The (empty) answer to a tls-alpn-01 challenge."""

    typ = "tls-alpn-01"


@challenges.Challenge.register
class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """RFC 8737: a certificate for the name, with the key authorization's digest in it."""

    response_cls = TLSALPN01Response
    typ = response_cls.typ

    def validation(self, account_key: JWK, **unused: Any) -> str:
        return self.key_authorization(account_key)


def tls_alpn_context(name: str, key_authorization: str) -> ssl.SSLContext:
    """A server context that presents the RFC 8737 validation certificate for ``name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        # The extension's value is the DER OCTET STRING holding the SHA-256 digest.
        .add_extension(x509.UnrecognizedExtension(_ACME_IDENTIFIER, b"\x04\x20" + digest), critical=True)
        .sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory() as tmp:  # load_cert_chain reads files only
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_private_pem(key))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert_path, key_path)
    ctx.set_alpn_protocols([ACME_TLS_ALPN])
    return ctx


class Challenges:
    """The challenges being validated now: http-01 tokens and tls-alpn-01 contexts by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.http01: dict[str, str] = {}  # token -> key authorization
        self.tls_alpn01: dict[str, ssl.SSLContext] = {}  # lower-case name -> validation context

    def context_for(self, server_name: str | None) -> ssl.SSLContext | None:
        if not server_name or not self.tls_alpn01:
            return None
        with self._lock:
            return self.tls_alpn01.get(server_name.lower())

    def http01_answer(self, token: str) -> str | None:
        with self._lock:
            return self.http01.get(token)

    @contextlib.contextmanager
    def publish(self, name: str, challb: messages.ChallengeBody, account_key: JWK) -> Iterator[None]:
        chall = challb.chall
        assert isinstance(chall, challenges.KeyAuthorizationChallenge)
        key_authorization = chall.key_authorization(account_key)
        token = chall.encode("token")
        with self._lock:
            if isinstance(chall, TLSALPN01):
                self.tls_alpn01[name.lower()] = tls_alpn_context(name, key_authorization)
            else:
                self.http01[token] = key_authorization
        try:
            yield
        finally:
            with self._lock:
                self.tls_alpn01.pop(name.lower(), None)
                self.http01.pop(token, None)


# -- files ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcmeFiles:
    directory: Path

    @classmethod
    def of(cls, settings: Settings) -> AcmeFiles:
        return cls(Path(settings.data_dir) / "acme")

    @property
    def account_key(self) -> Path:
        return self.directory / "account.key"

    @property
    def account(self) -> Path:
        return self.directory / "account.json"

    @property
    def cert(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def key(self) -> Path:
        return self.directory / "key.pem"

    @property
    def status(self) -> Path:
        return self.directory / "status.json"

    @property
    def lock(self) -> Path:
        return self.directory / "lock"

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)

    def certificate(self) -> x509.Certificate | None:
        try:
            return x509.load_pem_x509_certificate(self.cert.read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def read_status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.status.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data

    def write_status(self, **fields: Any) -> None:
        write_atomic(self.status, json.dumps(fields, default=str).encode())

    @contextlib.contextmanager
    def locked(self, timeout: float) -> Iterator[None]:
        """Hold the order lock (an flock: released by the kernel if the process dies)."""
        self.prepare()
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise AcmeError("another process has been ordering a certificate for too long") from None
                    time.sleep(0.2)
            yield
        finally:
            os.close(fd)


def _private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# -- the manager -------------------------------------------------------------------------------------


class CertificateManager:
    """Decides when to order, orders through the ``acme`` client, and keeps the files."""

    def __init__(self, settings: Settings, challenges_: Challenges | None = None) -> None:
        if not settings.server.public_hostname:
            raise StartupError(
                "[tls] acme = true needs [server] public_hostname: the name Tradecloud uses, for which "
                "the certificate is ordered."
            )
        self.settings = settings
        self.hostname = settings.server.public_hostname.lower()
        self.files = AcmeFiles.of(settings)
        self.challenges = challenges_ or Challenges()
        self.renew_before = dt.timedelta(days=settings.tls.acme_renew_before_days)

    def with_certificate(self) -> Settings:
        """The settings with ``[tls] certfile``/``keyfile`` pointing at the ACME files."""
        tls = self.settings.tls.model_copy(update={"certfile": self.files.cert, "keyfile": self.files.key})
        return self.settings.model_copy(update={"tls": tls})

    def renewal_time(self) -> dt.datetime | None:
        cert = self.files.certificate()
        if cert is None:
            return None
        return cert.not_valid_after_utc - self.renew_before

    def unusable(self, now: dt.datetime | None = None) -> str | None:
        """Why the stored certificate cannot be served at all (missing, expired, other name), or None."""
        cert = self.files.certificate()
        if cert is None or not self.files.key.is_file():
            return "no certificate yet"
        names = _dns_names(cert)
        if self.hostname not in names:
            return f"the certificate is for {', '.join(names) or 'no name'}, not {self.hostname}"
        if (now or dt.datetime.now(dt.UTC)) >= cert.not_valid_after_utc:
            return "the certificate has expired"
        return None

    def due(self, now: dt.datetime | None = None) -> str | None:
        """Why a new certificate is needed now, or None."""
        now = now or dt.datetime.now(dt.UTC)
        reason = self.unusable(now)
        if reason is not None:
            return reason
        cert = self.files.certificate()
        assert cert is not None
        if now >= cert.not_valid_after_utc - self.renew_before:
            return f"it expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        return None

    def obtain(self, *, force: bool = False) -> bool:
        """Order a certificate if one is due (or ``force``); True when new files were written.

        Blocking (run it in a thread). Challenges are published through ``self.challenges`` and
        must be answered by the caller's listeners while this runs.
        """
        with self.files.locked(timeout=ORDER_TIMEOUT + 60):
            reason = "renewal forced" if force else self.due()
            if reason is None:
                return False  # another process renewed it while we waited for the lock
            log.info("acme.ordering", hostname=self.hostname, reason=reason,
                     directory=self.settings.tls.acme_directory, challenge=self.settings.tls.acme_challenge)
            started = dt.datetime.now(dt.UTC)
            try:
                self._order()
            except Exception as exc:
                message = _describe(exc)
                self.files.write_status(last_attempt=started, ok=False, error=message)
                raise AcmeError(message) from None
            self.files.write_status(last_attempt=started, ok=True, error=None)
            cert = self.files.certificate()
            log.info("acme.issued", hostname=self.hostname,
                     not_after=cert.not_valid_after_utc.isoformat() if cert else None)
            return True

    def _order(self) -> None:
        tls = self.settings.tls
        account_key = self._account_key()
        verify: bool | str = str(tls.acme_ca_bundle) if tls.acme_ca_bundle else True
        net = client.ClientNetwork(account_key, verify_ssl=verify, user_agent="tcwebhook", timeout=30)  # type: ignore[arg-type]
        directory = client.ClientV2.get_directory(tls.acme_directory, net)
        acme = client.ClientV2(directory, net)
        net.account = self._account(acme, account_key, directory)

        key = ec.generate_private_key(ec.SECP256R1())
        csr = make_csr(_private_pem(key), [self.hostname])
        order = acme.new_order(csr)
        wanted = TLSALPN01.typ if tls.acme_challenge == "tls-alpn-01" else challenges.HTTP01.typ
        deadline = dt.datetime.now() + dt.timedelta(seconds=ORDER_TIMEOUT)
        with contextlib.ExitStack() as published:
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue  # the CA still trusts an earlier validation
                name = authz.body.identifier.value
                challb = next((c for c in authz.body.challenges if c.chall.typ == wanted), None)
                if challb is None:
                    raise AcmeError(f"the CA offers no {wanted} challenge for {name}")
                published.enter_context(self.challenges.publish(name, challb, account_key))
                acme.answer_challenge(challb, challb.chall.response(account_key))
            order = acme.poll_and_finalize(order, deadline)
        assert order.fullchain_pem is not None
        # Key first: a reader that sees the new chain finds its key already there (and the
        # hot-reload path only accepts a pair whose key matches).
        write_atomic(self.files.key, _private_pem(key))
        write_atomic(self.files.cert, order.fullchain_pem.encode())

    def _account_key(self) -> JWK:
        self.files.prepare()
        try:
            pem = self.files.account_key.read_bytes()
            return JWKRSA(key=serialization.load_pem_private_key(pem, password=None))
        except FileNotFoundError:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            write_atomic(self.files.account_key, _private_pem(key))
            return JWKRSA(key=key)

    def _account(
        self, acme: client.ClientV2, key: JWK, directory: messages.Directory
    ) -> messages.RegistrationResource:
        tls = self.settings.tls
        stored = self.files.account
        if stored.is_file():
            data = json.loads(stored.read_text())
            if data.get("directory") == tls.acme_directory:
                return messages.RegistrationResource(uri=data["uri"], body=messages.Registration())
        eab = None
        if tls.acme_eab_kid and tls.acme_eab_hmac_key:
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=key.public_key(), kid=tls.acme_eab_kid,
                hmac_key=tls.acme_eab_hmac_key.get_secret_value(), directory=directory,
            )
        elif acme.external_account_required():
            raise AcmeError("the CA requires External Account Binding: set [tls] acme_eab_kid and acme_eab_hmac_key")
        registration = messages.NewRegistration.from_data(
            email=tls.acme_email, terms_of_service_agreed=True, external_account_binding=eab
        )
        try:
            regr = acme.new_account(registration)
        except acme_errors.ConflictError as exc:  # the key already has an account at this CA
            regr = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
        write_atomic(stored, json.dumps({"directory": tls.acme_directory, "uri": regr.uri}).encode())
        return regr


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [name.lower() for name in san.get_values_for_type(x509.DNSName)]


def _describe(exc: Exception) -> str:
    if isinstance(exc, messages.Error):
        return f"the CA refused: {exc.detail or exc.typ}"
    if isinstance(exc, acme_errors.ValidationError):
        details = "; ".join(
            str(c.error.detail) for a in exc.failed_authzrs for c in a.body.challenges if c.error is not None
        )
        return f"challenge validation failed: {details or 'no detail'}"
    if isinstance(exc, acme_errors.TimeoutError):
        return "the CA did not finish the order in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# -- challenge listeners ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def http01_listener(host: str, port: int, table: Challenges) -> AsyncIterator[asyncio.Server]:
    """Plain HTTP that answers ``/.well-known/acme-challenge/<token>`` and nothing else."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=8192)
        try:
            async with asyncio.timeout(10):
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await reader.read(8192)
                        conn.receive_data(data)
                        if not data:
                            return
                        continue
                    break
            if not isinstance(event, h11.Request):
                return
            target = event.target.decode("ascii", "replace")
            answer = table.http01_answer(target[len(_HTTP01_PREFIX):]) if target.startswith(_HTTP01_PREFIX) else None
            if event.method != b"GET" or answer is None:
                status, body = 404, b"not found\n"
            else:
                status, body = 200, answer.encode()
            headers = [("content-type", "text/plain"), ("content-length", str(len(body))), ("connection", "close")]
            writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
            writer.write(conn.send(h11.Data(data=body)) or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
        except (TimeoutError, h11.RemoteProtocolError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    try:
        server = await asyncio.start_server(handle, host, port)
    except OSError as exc:
        raise StartupError(
            f"Cannot listen for ACME http-01 challenges on {host}:{port} ({exc.strerror}): free the port or "
            "set [server] http_port (the CA connects to port 80, so forward it there)."
        ) from None
    log.info("acme.http01_listening", host=host, port=port)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def tls_alpn01_listener(host: str, port: int, table: Challenges, hostname: str) -> AsyncIterator[None]:
    """Before the first certificate: the webhook port answers only tls-alpn-01 handshakes."""
    base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    base.set_alpn_protocols([ACME_TLS_ALPN])

    def pick(ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> int | None:
        ctx = table.context_for(server_name or hostname)
        if ctx is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        ssl_object.context = ctx
        return None

    base.sni_callback = pick

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # the validation is the handshake itself

    try:
        server = await asyncio.start_server(handle, host, port, ssl=base, ssl_handshake_timeout=10)
    except OSError as exc:
        raise StartupError(
            f"Cannot listen on {host}:{port} for the ACME tls-alpn-01 challenge ({exc.strerror}): stop what "
            "uses the port."
        ) from None
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


# -- running under serve ---------------------------------------------------------------------------

# After a failed order: 1 min, doubling, at most 6 h between attempts (the CA's rate limits
# punish clients that hammer it; the current certificate stays in use meanwhile).
RENEWAL_BACKOFF = Backoff(initial=60.0, multiplier=2.0, cap=6 * 3600.0, jitter=0.1)
RENEW_REQUEST = "renew-request"  # written by `tcwebhook certificate renew`, read by a running serve


@contextlib.asynccontextmanager
async def managed_certificate(
    settings: Settings, backoff: Backoff = RENEWAL_BACKOFF
) -> AsyncIterator[CertificateManager]:
    """A usable certificate on disk (ordered now if there is none), and the challenge listener.

    With no usable certificate, serve waits here for the first one: no webhook can be accepted
    without it, and Tradecloud retries meanwhile.
    """
    manager = CertificateManager(settings)
    host = settings.server.host
    async with contextlib.AsyncExitStack() as stack:
        if settings.tls.acme_challenge == "http-01":
            await stack.enter_async_context(http01_listener(host, settings.server.http_port, manager.challenges))
        failures = 0
        while (reason := manager.unusable()) is not None:
            log.info("acme.first_certificate", hostname=manager.hostname, reason=reason)
            try:
                if settings.tls.acme_challenge == "tls-alpn-01":
                    async with tls_alpn01_listener(host, settings.server.port, manager.challenges, manager.hostname):
                        await asyncio.to_thread(manager.obtain, force=True)
                else:
                    await asyncio.to_thread(manager.obtain, force=True)
            except AcmeError as exc:
                failures += 1
                wait = backoff.delay(failures)
                log.error("acme.order_failed", hostname=manager.hostname, error=str(exc), retry_in=round(wait, 1))
                await asyncio.sleep(wait)
        yield manager


async def keep_renewed(
    manager: CertificateManager,
    reload: Callable[[], bool],
    on_failure: Callable[[], None] | None = None,
    backoff: Backoff = RENEWAL_BACKOFF,
    poll: float = 1.0,
) -> None:
    """Renew when due (or asked to), forever; ``reload`` swaps the new files in."""
    failures = 0
    request = manager.files.directory / RENEW_REQUEST
    while True:
        wait = backoff.delay(failures) if failures else manager.settings.tls.acme_check_interval
        deadline = time.monotonic() + wait
        # A file, not an Event: the request comes from another process (`certificate renew`).
        while time.monotonic() < deadline and not request.exists():  # noqa: ASYNC110
            await asyncio.sleep(min(poll, max(deadline - time.monotonic(), 0)))
        forced = request.exists()
        if forced:
            with contextlib.suppress(FileNotFoundError):
                request.unlink()
        try:
            renewed = await asyncio.to_thread(manager.obtain, force=forced)
        except AcmeError as exc:
            failures += 1
            if on_failure is not None:
                on_failure()
            log.error("acme.renewal_failed", hostname=manager.hostname, error=str(exc),
                      retry_in=round(backoff.delay(failures), 1), action="the current certificate stays in use")
            continue
        failures = 0
        if renewed:
            reload()
