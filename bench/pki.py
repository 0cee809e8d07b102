"""Test certificates for benchmark targets: one CA, one loopback leaf, written as PEM files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Pki:
    """Paths of a CA certificate and a ``localhost``/``127.0.0.1`` leaf issued by it."""

    ca: Path
    cert: Path
    key: Path


def make_pki(directory: Path) -> Pki:
    """Write a fresh CA and leaf (90 days, ECDSA P-256) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    now = datetime.now(UTC)
    leaf = ca.issue_cert(
        "localhost", "127.0.0.1", not_before=now - timedelta(hours=1), not_after=now + timedelta(days=90)
    )
    pki = Pki(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(pki.ca))
    leaf.private_key_pem.write_to_path(str(pki.key))
    # Leaf first, then the chain, as a CA-issued bundle would be.
    with pki.cert.open("wb") as fh:
        for blob in leaf.cert_chain_pems:
            fh.write(blob.bytes())
    return pki
