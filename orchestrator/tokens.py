"""Tokens: HMAC-SHA256 of one server secret, one purpose per token.

A token is ``hex(HMAC-SHA256(secret, purpose || 0x00 || subject))``: a session token
cannot be used as a room or hook token, and no token can be derived from another.
Comparison is constant-time on the strings (a malformed token is simply invalid,
never an error: reference §17.14).

The secret is 32 random bytes kept in the data directory (mode 600), created on first
use; it is the signing key only (streams have no credential of their own here).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["Purpose", "TokenSigner", "load_or_create_secret"]

SECRET_BYTES = 32


class Purpose(enum.Enum):
    SESSION = "session"
    HOOK = "hook"
    ROOM = "room"
    GLOBAL_HOOK = "global-hook"
    ADMIN = "admin"  # the server's operator: sandbox routes
    # the git credential helper inside a session's sandbox: ``/github-token`` only (the
    # agent must not hold its session's token: it would answer its own gates)
    GIT = "git"


class TokenSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret must be at least 16 bytes")
        self._secret = secret

    def token(self, purpose: Purpose, subject: str = "") -> str:
        message = purpose.value.encode() + b"\x00" + subject.encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def check(self, purpose: Purpose, subject: str, token: str | None) -> bool:
        if not token:
            return False
        # bytes, not str: compare_digest refuses non-ASCII strings with a TypeError
        expected = self.token(purpose, subject).encode()
        return hmac.compare_digest(expected, token.encode("utf-8", "surrogatepass"))


def load_or_create_secret(path: Path) -> bytes:
    """The secret in ``path``, made (32 random bytes, mode 600) if missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = secrets.token_bytes(SECRET_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return data
    if len(data) < 16:
        raise ValueError(f"the token secret in {path} is too short")
    return data
