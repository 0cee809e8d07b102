"""The one credential a Tradecloud webhook is configured with: Basic or a static bearer token."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from pydantic import SecretStr


@dataclass(frozen=True, slots=True)
class Credentials:
    """Basic (RFC 7617) or bearer (RFC 6750); its repr never shows the secret."""

    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None

    @classmethod
    def parse(cls, *, token: str | None = None, basic: str | None = None) -> Credentials | None:
        """From ``--token`` / ``--basic USER:PASS``; ``ValueError`` when both or malformed."""
        if token is not None and basic is not None:
            raise ValueError("use either --token or --basic, not both (Tradecloud sends one)")
        if token is not None:
            if not token.strip():
                raise ValueError("the bearer token is empty")
            return cls(token=SecretStr(token))
        if basic is not None:
            user, sep, password = basic.partition(":")
            if not sep or not user or not password:
                raise ValueError("--basic needs USER:PASS with a non-empty user and password")
            return cls(username=user, password=SecretStr(password))
        return None

    @property
    def scheme(self) -> str:
        return "Bearer" if self.token is not None else "Basic"

    def header(self) -> str:
        """The ``Authorization`` header value."""
        if self.token is not None:
            return f"Bearer {self.token.get_secret_value()}"
        assert self.username is not None and self.password is not None
        raw = f"{self.username}:{self.password.get_secret_value()}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")
