"""The key store: the CURVE public keys allowed to call the daemon, each with a name and a role.

A client proves during its connection's handshake that it holds the secret key
of one of these public keys (the gateway's ZAP handler checks it); its calls then
run under the key's name and role. Only public keys are stored: no secret key
ever reaches the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import RowMapping, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from nua.model.base import Base, UtcDateTime, iso

NAME_MAX = 64


class ClientKey(Base):
    __tablename__ = "client_keys"

    name: Mapped[str] = mapped_column(String(NAME_MAX), primary_key=True)
    # Z85, 40 characters (32 bytes).
    public_key: Mapped[str] = mapped_column(String(40), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # When a connection last authenticated with it (recorded at most once a minute per key).
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


client_keys: Table = cast("Table", ClientKey.__table__)


def key_dict(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A key as replies carry it: its name, public key, role and times."""
    return {
        "name": row["name"],
        "public_key": row["public_key"],
        "role": row["role"],
        "created_at": iso(row["created_at"]),
        "last_seen_at": iso(row["last_seen_at"]),
    }
