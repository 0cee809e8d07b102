"""The files of ``data_dir/acme/`` and the lock that makes several processes order once."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tcwebhook.config import Settings
from tcwebhook.errors import AcmeError
from tcwebhook.filemodes import write_atomic


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


def private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
