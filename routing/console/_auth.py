"""Operator accounts and sessions: argon2 password hashes from the config, signed cookies.

A session cookie is signed with HMAC-SHA256: the account name, a random session id and an
expiry, nothing else. The signature says the hub issued it; whether the session is still
open is the ``console_sessions`` bucket's to say (``_sessions.py``). The secret is the
configured one, or a random one kept in the data folder (created once, shared by every hub
process on that folder, so a cookie holds against whichever worker answers).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = [
    "OPERATOR",
    "READ_ONLY",
    "ConsoleAccount",
    "ConsoleConfig",
    "Role",
    "Session",
    "SessionCodec",
    "hash_password",
    "load_session_secret",
]

Role = Literal["operator", "read-only"]
OPERATOR: Role = "operator"
READ_ONLY: Role = "read-only"

SECRET_FILE = "console-session.key"
_HASHER = PasswordHasher()
# A hash to verify against when the account is unknown: the answer takes as long as for a
# known account with a wrong password, so timing tells nobody which names exist.
_DECOY_HASH = _HASHER.hash(secrets.token_hex(16))


class ConsoleAccount(BaseModel):
    """``[console.accounts.NAME]``: an argon2 hash (``poststelle console-hash-password``)
    and a role."""

    model_config = ConfigDict(extra="forbid")

    password_hash: SecretStr = Field(description="argon2id hash, never the password itself")
    role: Role = READ_ONLY

    @field_validator("password_hash")
    @classmethod
    def _is_argon2(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("$argon2"):
            raise ValueError(
                "not an argon2 hash: `poststelle console-hash-password` prints one "
                "(a password in clear text does not belong in the config)"
            )
        return value


class ConsoleConfig(BaseModel):
    """``[console]``: who may log in to ``/console``. No accounts: nobody can."""

    model_config = ConfigDict(extra="forbid")

    accounts: dict[str, ConsoleAccount] = Field(default_factory=dict)
    session_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs session cookies (32+ characters); empty: a random key "
        "kept in the data folder (console-session.key)",
    )
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    secure_cookies: bool = Field(
        default=False,
        description="Send the session cookie over HTTPS only (set it when the hub serves TLS "
        "or sits behind a TLS proxy)",
    )

    @field_validator("accounts")
    @classmethod
    def _names(cls, value: dict[str, ConsoleAccount]) -> dict[str, ConsoleAccount]:
        for name in value:
            if not name or len(name) > 64 or not name.replace("-", "").replace(".", "").isalnum():
                raise ValueError(f"account name {name!r}: letters, digits, '-' and '.' only")
        return value

    @field_validator("session_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("session_secret: at least 32 characters")
        return value

    def authenticate(self, name: str, password: str) -> ConsoleAccount | None:
        """The account when the password is right; ``None`` otherwise, in the same time."""
        account = self.accounts.get(name)
        stored = account.password_hash.get_secret_value() if account else _DECOY_HASH
        try:
            _HASHER.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return account


def hash_password(password: str) -> str:
    """An argon2id hash with argon2-cffi's current defaults (RFC 9106's low-memory profile)."""
    if not password:
        raise ValueError("an empty password cannot be hashed")
    return _HASHER.hash(password)


def load_session_secret(config: ConsoleConfig, data_dir: Path) -> bytes:
    """The configured secret, else the data folder's, created on first use."""
    if config.session_secret is not None:
        return config.session_secret.get_secret_value().encode()
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting together agree on one key, the first one's.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_hex(32))
    for _ in range(50):
        key = path.read_text(encoding="ascii").strip()
        if key:
            return key.encode()
        time.sleep(0.01)  # the creating process has not written it yet
    raise RuntimeError(f"{path} is empty: delete it and start again")


@dataclass(frozen=True)
class Session:
    user: str
    session_id: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Signs and checks session cookies."""

    def __init__(self, secret: bytes, *, lifetime: float) -> None:
        # A key of its own (the CSRF tokens have another): a signature is never a token.
        self._cookie_key = hmac.new(secret, b"console-session", hashlib.sha256).digest()
        self._lifetime = lifetime

    def issue(self, user: str) -> tuple[Session, str]:
        session = Session(
            user=user,
            session_id=secrets.token_urlsafe(18),
            expires=int(time.time() + self._lifetime),
        )
        body = _b64(
            json.dumps(
                {"u": session.user, "s": session.session_id, "e": session.expires},
                separators=(",", ":"),
            ).encode()
        )
        return session, f"{body}.{self._sign(body)}"

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._cookie_key, body.encode(), hashlib.sha256).digest())

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie whose signature holds and that has not expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        if not hmac.compare_digest(self._sign(body), signature):
            return None
        try:
            data = json.loads(_unb64(body))
            session = Session(
                user=str(data["u"]), session_id=str(data["s"]), expires=int(data["e"])
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        return session if session.expires > time.time() else None
