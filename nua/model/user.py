"""Users of the platform. The password is stored only as a hash (see :mod:`nua.model.password`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import BigInteger, ColumnElement, Integer, RowMapping, String, Table, type_coerce
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
