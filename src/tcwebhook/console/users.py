"""Console logins: argon2 password hashes (or clear-text passwords for tests and dev), roles."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tcwebhook.config import ConsoleUser

log = structlog.get_logger(__name__)

Role = Literal["viewer", "operator"]

_HASHER = PasswordHasher()
# Verified when the username is unknown, so a wrong username costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


def hash_password(password: str) -> str:
    """The argon2id hash to put in ``[[console.users]] password_hash``."""
    return _HASHER.hash(password)


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role

    @property
    def operator(self) -> bool:
        return self.role == "operator"


class UserBook:
    """The configured users; ``verify`` answers a login attempt."""

    def __init__(self, users: tuple[ConsoleUser, ...]) -> None:
        self._users = {u.username: u for u in users}

    def warn_clear_passwords(self) -> None:
        clear = sorted(name for name, u in self._users.items() if u.password is not None)
        if clear:
            log.warning(
                "console_clear_text_passwords",
                users=clear,
                hint="use password_hash from `tcwebhook console hash-password` outside tests and dev",
            )

    def __len__(self) -> int:
        return len(self._users)

    def verify(self, username: str, password: str) -> User | None:
        entry = self._users.get(username)
        if entry is None or entry.disabled:
            _check_hash(_DUMMY_HASH, password)  # a disabled login costs as long as any other
            return None
        if entry.password is not None:
            ok = hmac.compare_digest(entry.password.get_secret_value().encode(), password.encode())
        else:
            assert entry.password_hash is not None
            ok = _check_hash(entry.password_hash.get_secret_value(), password)
        return User(entry.username, entry.role) if ok else None


def _check_hash(encoded: str, password: str) -> bool:
    try:
        return _HASHER.verify(encoded, password)
    except (VerificationError, InvalidHashError):
        return False
