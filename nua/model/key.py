"""The key store: the CURVE public keys allowed to call the daemon, each with a name and a role.

A client proves during its connection's handshake that it holds the secret key
of one of these public keys (the gateway's ZAP handler checks it); its calls then
run under the key's name and role. Only public keys are stored: no secret key
ever reaches the database.

A key may also hold one HTTP bearer token (``key_tokens``): the token's id and the
SHA-256 of its secret, never the secret, which only its holder has (``nua-orchestrator
keys token NAME`` makes it on the admin's side and sends the hash). A call over HTTP
with that token runs under the key's name and role, until the token expires.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, ForeignKey, RowMapping, String, Table

from nua.model.base import UtcDateTime, iso, metadata

NAME_MAX = 64

client_keys = Table(
    "client_keys",
    metadata,
    Column("name", String(NAME_MAX), primary_key=True),
    # Z85, 40 characters (32 bytes).
    Column("public_key", String(40), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # When a connection last authenticated with it (recorded at most once a minute per key).
    Column("last_seen_at", UtcDateTime, nullable=True),
)


def key_dict(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A key as replies carry it: its name, public key, role and times."""
    return {
        "name": row["name"],
        "public_key": row["public_key"],
        "role": row["role"],
        "created_at": iso(row["created_at"]),
        "last_seen_at": iso(row["last_seen_at"]),
    }


# The most characters of a token id (hex of 8 random bytes) and of a SHA-256 hex digest.
TOKEN_ID_LEN = 16
TOKEN_HASH_LEN = 64

key_tokens = Table(
    "key_tokens",
    metadata,
    # One token per key: issuing another replaces it.
    Column("name", String(NAME_MAX), ForeignKey("client_keys.name", ondelete="CASCADE"), primary_key=True),
    Column("token_id", String(TOKEN_ID_LEN), nullable=False, unique=True),
    Column("token_hash", String(TOKEN_HASH_LEN), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)


def token_dict(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A token as replies carry it: whose, its id and when it expires (never its hash)."""
    return {
        "name": row["name"],
        "token_id": row["token_id"],
        "created_at": iso(row["created_at"]),
        "expires_at": iso(row["expires_at"]),
    }
