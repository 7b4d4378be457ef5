"""User groups and their members, after the original schema's ``userGroups`` and ``groupMembers``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, ForeignKey, Integer, RowMapping, String, Table

from nua.model.base import UtcDateTime, iso, metadata
from nua.model.user import IdType

user_groups = Table(
    "user_groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    # Where the group comes from (as in the original; "" for groups made here).
    Column("source", String(128), nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
)

# A user's memberships go when the user or the group is deleted.
group_members = Table(
    "group_members",
    metadata,
    Column("group_id", ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", IdType, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


def group_dict(row: RowMapping | dict[str, Any], members: int) -> dict[str, Any]:
    """A group as replies carry it, with its number of members."""
    return {
        "id": row["id"],
        "name": row["name"],
        "source": row["source"],
        "created_at": iso(row["created_at"]),
        "members": members,
    }
