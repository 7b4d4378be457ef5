"""Application settings kept in the database: JSON values under dotted keys.

A namespace of their own: never the daemon's configuration (the settings file
and ``NUA_*`` variables), whose sections no key may begin with.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, RowMapping, String, Table

from nua.model.base import UtcDateTime, iso, metadata
from nua.model.text import json_encodable, repaired

settings_table = Table(
    "settings",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


# Why a setting's value is shown repaired (see stored_setting_dict).
DAMAGED = (
    "the stored value holds text UTF-8 cannot encode (a lone surrogate, stored by an older nua);"
    " each such character is shown as U+FFFD: set the value again or remove it with setting_delete"
)


def setting_dict(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A setting as replies carry it, for a value already checked (one just written)."""
    return {"key": row["key"], "value": row["value"], "updated_at": iso(row["updated_at"])}


def stored_setting_dict(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A setting read from the database: a value that could not be sent is shown repaired.

    Before values were checked, a lone surrogate could be stored (JSON escapes
    it); the reply holding it then failed for whoever read the row, and a whole
    list with it. The row is shown with the damaged characters replaced and a
    ``damaged`` reason, so that it can be seen, and set again or deleted.
    """
    found = setting_dict(row)
    if not json_encodable(found["value"]):
        found["value"] = repaired(found["value"])
        found["damaged"] = DAMAGED
    return found
