"""HTTP bearer tokens: how one is made, read back and proved, without anything else of nua.

A token is ``nua_<id>_<secret>``: ``id`` is 16 hex digits naming it (stored in
clear, to find it), ``secret`` 32 random bytes in URL-safe base64. The key store
keeps only the SHA-256 of the secret: a token carries 256 random bits, so a
fast hash is enough (a slow one protects guessable passwords, not random keys),
and a check costs microseconds on every request. The secret is compared with
:func:`hmac.compare_digest` (constant time). A leaf: ``nua-orchestrator keys
token`` makes tokens on the admin's side, the HTTP server checks them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import NamedTuple

PREFIX = "nua"
ID_BYTES = 8
SECRET_BYTES = 32
# nua_ + 16 hex + _ + 43 base64url characters; anything longer is not ours.
MAX_TOKEN_CHARS = 128
_TOKEN = re.compile(r"^nua_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_HEX = re.compile(r"^[0-9a-f]+$")


class Token(NamedTuple):
    """A token as its holder has it, and what the key store keeps of it."""

    text: str  # the whole token: shown once, to the admin who made it
    token_id: str
    token_hash: str  # SHA-256 of the secret, hex


def make() -> Token:
    """A new random token."""
    token_id = secrets.token_hex(ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return Token(f"{PREFIX}_{token_id}_{secret}", token_id, digest(secret))


def digest(secret: str) -> str:
    """The SHA-256 of a token's secret, as stored (hex)."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse(text: str) -> tuple[str, str] | None:
    """``(token id, secret)`` of a token's text, or ``None`` when it is not shaped as one."""
    if len(text) > MAX_TOKEN_CHARS:
        return None
    found = _TOKEN.match(text)
    return None if found is None else (found.group(1), found.group(2))


def proves(secret: str, token_hash: str) -> bool:
    """Whether ``secret`` is the one whose hash is ``token_hash``, compared in constant time."""
    return hmac.compare_digest(digest(secret).encode("ascii"), token_hash.encode("ascii"))


def is_id(value: object) -> bool:
    """Whether ``value`` is a token id (16 lowercase hex digits)."""
    return isinstance(value, str) and len(value) == 2 * ID_BYTES and _HEX.match(value) is not None


def is_hash(value: object) -> bool:
    """Whether ``value`` is a SHA-256 hex digest."""
    return isinstance(value, str) and len(value) == 64 and _HEX.match(value) is not None


__all__ = ["Token", "digest", "is_hash", "is_id", "make", "parse", "proves"]
