"""The recorded schema version and the idempotent create-or-upgrade run at every start.

``nua_meta`` holds ``schema_version``. A fresh database gets every table and the
current version; an older one runs the upgrade steps from its version up, in the
same transaction (SQLite and PostgreSQL both have transactional DDL); a newer
one is refused, since this code would not know its tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Column, String, Table, delete, insert, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection

# Importing the model modules registers their tables in the metadata.
from nua.model import audit, cron, group, service, setting, user  # noqa: F401 - imported for their tables
from nua.model import key as _key  # noqa: F401 - imported for its table
from nua.model.base import metadata
from nua.model.schema_version import META_TABLE, SCHEMA_VERSION, newer_schema
from nua.settings import CONFIGURATION_SECTIONS

# The mark an older nua left when it copied the configuration into ``settings``.
COPIED_CONFIGURATION = "settings_bootstrapped"

# UPGRADES[n] takes a database at version n to n + 1. A new table needs no step (nor a new
# SCHEMA_VERSION): ``create_all`` below adds it to an older database (client_keys and audit did).
UPGRADES: dict[int, Callable[[Connection], None]] = {
    1: audit.upgrade_from_v1,  # the audit table without its index on ``at`` (and AUTOINCREMENT on SQLite)
}


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this version of nua."""


meta = Table(
    META_TABLE,
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


def ensure_schema(connection: Connection) -> SchemaState:
    """Create or upgrade the schema inside the caller's transaction; safe to run at every start.

    A database made by an older nua holds a copy of the configuration in its
    ``settings`` table, taken at its first start and never read back (``zmq.port``
    said 5001 while the daemon listened elsewhere): those rows are removed once,
    since the configuration is the settings file and the variables only.
    """
    meta.create(connection, checkfirst=True)
    recorded = _read_meta(connection, "schema_version")
    created = recorded is None
    version = SCHEMA_VERSION if recorded is None else int(recorded)
    if version > SCHEMA_VERSION:
        raise SchemaError(newer_schema(version))
    upgraded_from = version if version < SCHEMA_VERSION else None
    while version < SCHEMA_VERSION:
        UPGRADES[version](connection)
        version += 1
    metadata.create_all(connection, checkfirst=True)
    _write_meta(connection, "schema_version", str(SCHEMA_VERSION))
    if _read_meta(connection, COPIED_CONFIGURATION) is not None:
        _forget_copied_configuration(connection)
    return SchemaState(version=SCHEMA_VERSION, created=created, upgraded_from=upgraded_from)


def _forget_copied_configuration(connection: Connection) -> None:
    """Remove the copy of the configuration an older nua put in ``settings``, and the mark saying it did."""
    table = setting.settings_table
    keys = connection.execute(select(table.c.key)).scalars().all()
    copied = [key for key in keys if key.split(".", 1)[0].lower() in CONFIGURATION_SECTIONS]
    if copied:
        connection.execute(delete(table).where(table.c.key.in_(copied)))
    connection.execute(delete(meta).where(meta.c.key == COPIED_CONFIGURATION))


__all__ = ["SCHEMA_VERSION", "UPGRADES", "SchemaError", "SchemaState", "ensure_schema", "recorded_version"]
