"""Certificates that get themselves: ACME (RFC 8555) orders and renewals for ``public_hostname``.

The protocol is the ``acme`` package's (certbot's client library); this package only keeps the
files (``files``), answers the challenges (``challenges``, ``listeners``), decides when to order
and orders (``ordering``), and renews under ``serve`` (``renewal``)::

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

from tcwebhook.errors import AcmeError
from tcwebhook.transport.acme.challenges import (
    ACME_TLS_ALPN,
    TLSALPN01,
    Challenges,
    TLSALPN01Response,
    tls_alpn_context,
)
from tcwebhook.transport.acme.files import AcmeFiles
from tcwebhook.transport.acme.listeners import http01_listener, tls_alpn01_listener
from tcwebhook.transport.acme.ordering import LETS_ENCRYPT, ORDER_TIMEOUT, CertificateManager
from tcwebhook.transport.acme.renewal import RENEW_REQUEST, RENEWAL_BACKOFF, keep_renewed, managed_certificate

__all__ = [
    "ACME_TLS_ALPN",
    "LETS_ENCRYPT",
    "ORDER_TIMEOUT",
    "RENEWAL_BACKOFF",
    "RENEW_REQUEST",
    "TLSALPN01",
    "AcmeError",
    "AcmeFiles",
    "CertificateManager",
    "Challenges",
    "TLSALPN01Response",
    "http01_listener",
    "keep_renewed",
    "managed_certificate",
    "tls_alpn01_listener",
    "tls_alpn_context",
]
