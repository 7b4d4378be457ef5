"""Services added at run time (``service_add``), kept so that they come back after a restart.

One row per service: its name and its declaration as the JSON table that
:func:`nua.service_settings.parse_service` reads (checked before it is written,
and again when read back, since a row may predate a rule). Services of the
settings file are not stored: the file is their only source.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, RowMapping, String, Table

from nua.model.base import UtcDateTime, iso, metadata

services_table = Table(
    "services",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("config", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


def service_row_dict(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A stored service as replies carry it: ``name``, ``config`` (the table) and ``updated_at``."""
    return {"name": row["name"], "config": row["config"], "updated_at": iso(row["updated_at"])}
