"""Password hashes: scrypt with a per-user random salt, verified in constant time.

The stored form is self-describing, ``scrypt$<n>$<r>$<p>$<salt>$<key>`` (salt and
key in unpadded URL-safe base64), so that raising the cost in the settings later
leaves existing hashes verifiable. Hashing is slow on purpose and releases the GIL:
call it in the caller's thread, never inside the DB writer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from nua.setting_rules import scrypt_maxmem
from nua.settings import SecuritySettings

SALT_BYTES = 16
KEY_BYTES = 32
_SCHEME = "scrypt"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    maxmem = scrypt_maxmem(n, r, p)  # the bound the settings were checked with at load
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=KEY_BYTES)


def hash_password(password: str, security: SecuritySettings) -> str:
    """The storable hash of ``password`` with a fresh salt, at the cost ``security`` sets."""
    salt = secrets.token_bytes(SALT_BYTES)
    n, r, p = security.scrypt_n, security.scrypt_r, security.scrypt_p
    key = _derive(password, salt, n, r, p)
    return f"{_SCHEME}${n}${r}${p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; a malformed hash never matches."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != _SCHEME:
            return False
        expected = _unb64(key)
        actual = _derive(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, binascii.Error, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


__all__ = ["hash_password", "verify_password"]
