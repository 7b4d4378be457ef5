"""Whether the daemon's SQLite database can be opened and written, asked with the standard library alone.

The daemon says it is ready once its endpoint is bound and its database is known
to work, before SQLAlchemy (270 ms of CPU here) and the actors have loaded: calls
arriving meanwhile wait (see "Running as a service" in the README). So what would
make the DB writer's first open fail is asked here first, the way the writer will
do it (:mod:`nua.model.engine`): the file opened, created at a first start in a
private directory; WAL set; the write lock taken (``BEGIN IMMEDIATE``, waiting up
to the busy timeout for another process's); the recorded schema version read, a
newer one refused; then rolled back, nothing written but WAL mode. An unreadable,
read-only, locked or foreign file (``file is not a database``), a directory that
cannot be made, and a newer schema all stop the start with their reason, as they
did when the writer was the first to find them.

Only a plain SQLite URL is checked here (:func:`~nua.setting_rules.plain_sqlite_url`):
for any other (PostgreSQL, a URI with options) the daemon is ready only once its
DB writer has connected through SQLAlchemy.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nua.model.schema_version import META_TABLE, SCHEMA_VERSION, newer_schema
from nua.setting_rules import plain_sqlite_url
from nua.settings import DbSettings, SettingsError, private_dir

# How long a connection waits for another's lock (SQLite's busy timeout), here and in the engine.
BUSY_TIMEOUT_MS = 5000


class DatabaseCheckError(Exception):
    """The database would not open for the DB writer; the message says why (no secret: a path and SQLite's words)."""


def checkable(db: DbSettings) -> bool:
    """Whether :func:`check` can answer for ``db.url`` (a plain SQLite URL)."""
    return plain_sqlite_url(db.url)


def sqlite_path(db: DbSettings) -> Path | None:
    """The file of a plain SQLite ``db.url``, as the engine resolves it; ``None`` for memory."""
    _, _, database = db.url.partition(":///")
    if not database:
        return None
    return Path(database).expanduser().absolute()


def check(db: DbSettings) -> None:
    """Open the database as the DB writer's first open will (see the module's doc); ``DatabaseCheckError`` if not.

    Call only when :func:`checkable`.
    """
    path = sqlite_path(db)
    if path is None:
        return  # in memory: nothing to open
    try:
        private_dir(path.parent)
    except SettingsError as exc:
        raise DatabaseCheckError(str(exc)) from None
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as exc:
        msg = f"cannot open the database {path}: {exc}"
        raise DatabaseCheckError(msg) from None
    try:
        version = _recorded_version(conn)
    except sqlite3.Error as exc:
        msg = f"cannot use the database {path}: {exc}"
        raise DatabaseCheckError(msg) from None
    finally:
        conn.close()
    if version is not None and version > SCHEMA_VERSION:
        raise DatabaseCheckError(newer_schema(version))


def _recorded_version(conn: sqlite3.Connection) -> int | None:
    """WAL set, the write lock taken, the schema version read (``None``: no nua schema yet), rolled back."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (META_TABLE,))
        if found.fetchone() is None:
            return None
        row = conn.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'schema_version'").fetchone()  # noqa: S608 - a constant
    finally:
        conn.execute("ROLLBACK")
    value = row[0] if row is not None else None
    return int(value) if isinstance(value, str) and value.isdigit() else None


__all__ = ["BUSY_TIMEOUT_MS", "DatabaseCheckError", "check", "checkable", "sqlite_path"]
