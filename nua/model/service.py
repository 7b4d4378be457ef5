"""Services added at run time (``service_add``), kept so that they come back after a restart.

One row per service: its name and its declaration as the JSON table that
:func:`nua.service_settings.parse_service` reads (checked before it is written,
and again when read back, since a row may predate a rule). Services of the
settings file are not stored: the file is their only source.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, RowMapping, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from nua.model.base import Base, UtcDateTime, iso


class Service(Base):
    __tablename__ = "services"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    config: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


services_table: Table = cast("Table", Service.__table__)


def service_row_dict(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A stored service as replies carry it: ``name``, ``config`` (the table) and ``updated_at``."""
    return {"name": row["name"], "config": row["config"], "updated_at": iso(row["updated_at"])}
