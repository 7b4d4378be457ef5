"""User groups and their members, after the original schema's ``userGroups`` and ``groupMembers``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Column, ForeignKey, Integer, RowMapping, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from nua.model.base import Base, UtcDateTime, iso
from nua.model.user import IdType


class UserGroup(Base):
    __tablename__ = "user_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    # Where the group comes from (as in the original; "" for groups made here).
    source: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


# A user's memberships go when the user or the group is deleted.
group_members = Table(
    "group_members",
    Base.metadata,
    Column("group_id", ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)

user_groups: Table = cast("Table", UserGroup.__table__)


def group_dict(row: RowMapping | dict[str, Any], members: int) -> dict[str, Any]:
    """A group as replies carry it, with its number of members."""
    return {
        "id": row["id"],
        "name": row["name"],
        "source": row["source"],
        "created_at": iso(row["created_at"]),
        "members": members,
    }
