"""When a certificate is due, and ordering it through the ``acme`` client (account, challenges, finalise)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import structlog
from acme import challenges, client, messages
from acme import errors as acme_errors
from acme.crypto_util import make_csr
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.jwk import JWK, JWKRSA

from tcwebhook.config import Settings
from tcwebhook.errors import AcmeError, StartupError
from tcwebhook.filemodes import write_atomic
from tcwebhook.transport.acme.challenges import TLSALPN01, Challenges
from tcwebhook.transport.acme.files import AcmeFiles, private_pem

log = structlog.get_logger("tcwebhook.transport.acme")

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
ORDER_TIMEOUT = 180.0  # seconds for one order: challenge validation and finalisation


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
        csr = make_csr(private_pem(key), [self.hostname])
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
        write_atomic(self.files.key, private_pem(key))
        write_atomic(self.files.cert, order.fullchain_pem.encode())

    def _account_key(self) -> JWK:
        self.files.prepare()
        try:
            pem = self.files.account_key.read_bytes()
            return JWKRSA(key=serialization.load_pem_private_key(pem, password=None))
        except FileNotFoundError:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            write_atomic(self.files.account_key, private_pem(key))
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
