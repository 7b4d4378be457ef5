"""The recorded schema version and the idempotent create-or-upgrade run at every start.

``nua_meta`` holds ``schema_version``. A fresh database gets every table and the
current version; an older one runs the upgrade steps from its version up, in the
same transaction (SQLite and PostgreSQL both have transactional DDL); a newer
one is refused, since this code would not know its tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, String, Table, insert, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection

# Importing the model modules registers their tables in the metadata.
from nua.model import audit, cron, group, service, setting, user  # noqa: F401 - imported for their tables
from nua.model import key as _key  # noqa: F401 - imported for its table
from nua.model.base import metadata, utcnow

# A new table needs no step: ``create_all`` below adds it to an older database (client_keys and audit did).
SCHEMA_VERSION = 1

# UPGRADES[n] takes a database at version n to n + 1.
UPGRADES: dict[int, Callable[[Connection], None]] = {}


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this version of nua."""


meta = Table(
    "nua_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)


@dataclass(frozen=True)
class SchemaState:
    """What :func:`ensure_schema` found and did."""

    version: int
    created: bool
    upgraded_from: int | None = None


def _read_meta(connection: Connection, key: str) -> str | None:
    value: str | None = connection.execute(select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()
    return value


def _write_meta(connection: Connection, key: str, value: str) -> None:
    current = _read_meta(connection, key)
    if current is None:
        connection.execute(insert(meta).values(key=key, value=value))
    elif current != value:
        # Only a change is written: a start that finds its schema leaves the transaction
        # read-only, and its commit costs no disk flush.
        connection.execute(meta.update().where(meta.c.key == key).values(value=value))


def recorded_version(connection: Connection) -> int | None:
    """The schema version the database records; ``None`` when it holds no nua schema at all (only reads)."""
    if not sa_inspect(connection).has_table(meta.name):
        return None
    recorded = _read_meta(connection, "schema_version")
    return int(recorded) if recorded is not None and recorded.isdigit() else None


def ensure_schema(connection: Connection, initial_settings: Mapping[str, Any] | None = None) -> SchemaState:
    """Create or upgrade the schema inside the caller's transaction; safe to run at every start.

    ``initial_settings`` seeds the ``settings`` table the first time only: later
    starts leave the rows (which may have been changed since) alone.
    """
    meta.create(connection, checkfirst=True)
    recorded = _read_meta(connection, "schema_version")
    created = recorded is None
    version = SCHEMA_VERSION if recorded is None else int(recorded)
    if version > SCHEMA_VERSION:
        msg = f"the database's schema version {version} is newer than this nua's ({SCHEMA_VERSION}); upgrade nua"
        raise SchemaError(msg)
    upgraded_from = version if version < SCHEMA_VERSION else None
    while version < SCHEMA_VERSION:
        UPGRADES[version](connection)
        version += 1
    metadata.create_all(connection, checkfirst=True)
    _write_meta(connection, "schema_version", str(SCHEMA_VERSION))
    if initial_settings is not None and _read_meta(connection, "settings_bootstrapped") is None:
        _bootstrap_settings(connection, initial_settings)
        _write_meta(connection, "settings_bootstrapped", utcnow().isoformat())
    return SchemaState(version=SCHEMA_VERSION, created=created, upgraded_from=upgraded_from)


def _bootstrap_settings(connection: Connection, rows: Mapping[str, Any]) -> None:
    table = setting.settings_table
    present = set(connection.execute(select(table.c.key)).scalars())
    now = utcnow()
    missing = [{"key": key, "value": value, "updated_at": now} for key, value in rows.items() if key not in present]
    if missing:
        connection.execute(insert(table), missing)


__all__ = ["SCHEMA_VERSION", "UPGRADES", "SchemaError", "SchemaState", "ensure_schema", "recorded_version"]
