"""Users of the platform. The password is stored only as a hash (see :mod:`nua.model.password`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ColumnElement, Integer, RowMapping, String, Table, type_coerce

from nua.model.base import UtcDateTime, iso, metadata

# SQLite makes an "INTEGER PRIMARY KEY" the rowid (fast, 64-bit); elsewhere ids are 64-bit too.
IdType = BigInteger().with_variant(Integer(), "sqlite")


users = Table(
    "users",
    metadata,
    # Ids are chosen by the writer (a given id, else the next free one), never by a sequence.
    Column("id", IdType, primary_key=True, autoincrement=False),
    Column("username", String(254), nullable=False, unique=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(32), nullable=False, default="user"),
    Column("display_name", String(512), nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False, index=True),
    Column("updated_at", UtcDateTime, nullable=False),
)
# What a reply may show of a user: every column but the password hash.
PUBLIC_COLUMNS = tuple(column for column in users.columns if column.name != "password_hash")


def user_dict(row: RowMapping | dict[str, Any], stamp: Callable[[Any], str | None] = iso) -> dict[str, Any]:
    """A user as replies carry it: JSON values only, timestamps in ISO 8601 (by ``stamp``), never the hash."""
    return {
        "id": row["id"],
        "username": row["username"],
        "email": row["email"],
        "role": row["role"],
        "display_name": row["display_name"],
        "created_at": stamp(row["created_at"]),
        "updated_at": stamp(row["updated_at"]),
    }


# Lists on SQLite read the two timestamps as the text SQLAlchemy stored
# ("YYYY-MM-DD HH:MM:SS.ffffff", UTC) and reshape it: parsing, converting and
# rendering two datetimes was two thirds of the time a page of users took.
_STAMPS = ("created_at", "updated_at")
TEXT_STAMP_COLUMNS: tuple[ColumnElement[Any], ...] = tuple(
    type_coerce(column, String).label(column.name) if column.name in _STAMPS else column for column in PUBLIC_COLUMNS
)


def stored_iso(text: str | None) -> str | None:
    """A timestamp SQLite holds as text, rendered as :func:`nua.model.base.iso` renders it."""
    if text is None:
        return None
    if len(text) == 26 and text[10] == " " and text[19] == ".":
        return f"{text[:10]}T{text[11:]}+00:00"
    stamp = datetime.fromisoformat(text)  # another writer's form: the general way
    return iso(stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC))


def user_dict_stored(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """:func:`user_dict` of a row read with :data:`TEXT_STAMP_COLUMNS`."""
    return user_dict(row, stored_iso)
