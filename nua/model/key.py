"""The key store: the CURVE public keys allowed to call the daemon, each with a name and a role.

A client proves during its connection's handshake that it holds the secret key
of one of these public keys (the gateway's ZAP handler checks it); its calls then
run under the key's name and role. Only public keys are stored: no secret key
ever reaches the database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, RowMapping, String, Table

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
