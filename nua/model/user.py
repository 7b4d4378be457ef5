"""Users of the platform. The password is stored only as a hash (see :mod:`nua.model.password`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Integer, RowMapping, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from nua.model.base import Base, UtcDateTime, iso

# SQLite makes an "INTEGER PRIMARY KEY" the rowid (fast, 64-bit); elsewhere ids are 64-bit too.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class User(Base):
    __tablename__ = "users"

    # Ids are chosen by the writer (a given id, else the next free one), never by a sequence.
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(String(254), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32), default="user")
    display_name: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


users: Table = cast("Table", User.__table__)
# What a reply may show of a user: every column but the password hash.
PUBLIC_COLUMNS = tuple(column for column in users.columns if column.name != "password_hash")


def user_dict(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A user as replies carry it: JSON values only, timestamps in ISO 8601, never the hash."""
    return {
        "id": row["id"],
        "username": row["username"],
        "email": row["email"],
        "role": row["role"],
        "display_name": row["display_name"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
