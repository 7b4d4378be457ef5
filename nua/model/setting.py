"""Settings kept in the database: JSON values under dotted keys, seeded from the settings file."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, RowMapping, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from nua.model.base import Base, UtcDateTime, iso
from nua.settings import Settings


class Setting(Base):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


settings_table: Table = cast("Table", Setting.__table__)


def setting_dict(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    return {"key": row["key"], "value": row["value"], "updated_at": iso(row["updated_at"])}


def initial_settings(settings: Settings) -> dict[str, Any]:
    """The settings as ``section.key`` -> value rows, for the first start's bootstrap.

    A password in the database URL is masked: setting rows are readable over RPC.
    """
    rows: dict[str, Any] = {}
    for section_field in dataclasses.fields(settings):
        section = getattr(settings, section_field.name)
        if not dataclasses.is_dataclass(section) or isinstance(section, type):
            continue  # config_file: where the settings came from, not a setting
        for key, value in dataclasses.asdict(section).items():
            rows[f"{section_field.name}.{key}"] = value
    rows["db.url"] = settings.db.safe_url
    return rows
