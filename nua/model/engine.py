"""The engine for ``[db] url``, with the SQLite connection settings the DB writer relies on.

SQLite: WAL (readers never block the writer), ``synchronous`` from the settings
(FULL: a commit survives power loss), foreign keys enforced, a busy timeout. Those
last three are per connection, so they are set on every new connection. The
stdlib driver's own transaction handling is switched off and SQLAlchemy emits
``BEGIN`` itself, the documented recipe that makes SAVEPOINTs (one per command of
a batch) and transactional DDL (schema upgrades) work.

A SQLite file is created only when asked (the daemon's first open): reopened
after it went away, it must already exist, since an empty database silently put
in place of a deleted one would hide the loss of every row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from nua.model.sqlite_check import BUSY_TIMEOUT_MS
from nua.settings import DbSettings, private_dir

# Key of a connection's ``info`` that makes its next BEGIN a read-only (deferred) one.
_READ_ONLY = "nua_read_only"


def sqlite_file(db: DbSettings) -> Path | None:
    """The file of a SQLite ``db.url`` given as a path; ``None`` for another backend, memory or a URI."""
    url = sa.make_url(db.url)
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().absolute()


def create(db: DbSettings, *, create_file: bool = True, reader: bool = False, **engine_args: Any) -> Engine:
    """An engine for ``db.url``; a SQLite file's missing directories are created private (0700), unsafe ones refused.

    ``create_file=False``: a SQLite file that does not exist is an error when
    connecting (SQLITE_CANTOPEN), not a new empty database. ``reader``: on SQLite,
    connections that cannot write (``query_only``) and whose transactions take no
    lock (``BEGIN`` DEFERRED), for the DB reader beside the one writer; it never
    creates the file.
    """
    url = sa.make_url(db.url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, hide_parameters=True, **engine_args)
    path = sqlite_file(db)
    create_file = create_file and not reader
    if path is not None and create_file:
        private_dir(path.parent)
    elif path is not None:
        # SQLite's URI form is the only way to say "open, never create" (mode=rw).
        url = url.set(database=f"file:{quote(str(path))}", query={**url.query, "mode": "rw", "uri": "true"})
    engine = sa.create_engine(url, hide_parameters=True, **engine_args)
    _configure_sqlite(engine, db.sqlite_synchronous, reader=reader)
    return engine


def _configure_sqlite(engine: Engine, synchronous: str, *, reader: bool) -> None:
    # The settings admit only OFF, NORMAL, FULL or EXTRA; check again since it is spliced into SQL.
    if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        msg = f"unknown SQLite synchronous mode {synchronous!r}"
        raise ValueError(msg)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if reader:
                cursor.execute("PRAGMA query_only=ON")  # WAL is a property of the file, set by the writer
            else:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA synchronous={synchronous}")
                cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front: no deadlock upgrading a read lock later.
        # Straight on the driver: through exec_driver_sql (an execution context, events,
        # a result) this one statement cost a fifth of the DB writer's time under load.
        # A failure raises the driver's own error; callers treat any error here alike.
        # A read-only transaction stays DEFERRED: it works on a read-only file, and
        # with the write lock held elsewhere.
        statement = "BEGIN" if reader or connection.info.get(_READ_ONLY) else "BEGIN IMMEDIATE"
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(statement)
        finally:
            cursor.close()


def discard(conn: Connection) -> bool:
    """Close ``conn`` for good: what is uncommitted rolled back, its driver connection closed, never pooled again.

    A broken connection may fail to close; it is gone either way: ``False`` then, for the caller to log.
    """
    try:
        conn.invalidate()
        conn.close()
    except Exception:  # noqa: BLE001 - already broken: nothing more to do with it
        return False
    return True


@contextmanager
def read_only(conn: Connection) -> Iterator[None]:
    """Make the transactions begun inside this block read-only ones, where the backend tells them apart.

    On SQLite a plain ``BEGIN`` instead of ``BEGIN IMMEDIATE``: reads then work on
    a database that cannot be written (read-only file, another writer's lock).
    """
    conn.info[_READ_ONLY] = True
    try:
        yield
    finally:
        conn.info.pop(_READ_ONLY, None)


class Savepoint:
    """One command's SAVEPOINT, issued on the driver's connection inside the current transaction.

    SQLAlchemy's ``begin_nested()`` costs about as much CPU as the command it
    protects (transaction objects, events, the execution context of each statement);
    in the DB writer's serial section that halves throughput. These three statements
    are the same SQL on SQLite and PostgreSQL, so they go straight to the driver.
    One name serves every command: each savepoint is released before the next.
    """

    NAME = "nua_command"

    def __init__(self, conn: Connection) -> None:
        self._cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        self._cursor.execute(f"SAVEPOINT {self.NAME}")

    def release(self) -> None:
        self._cursor.execute(f"RELEASE SAVEPOINT {self.NAME}")
        self._cursor.close()

    def rollback(self) -> None:
        self._cursor.execute(f"ROLLBACK TO SAVEPOINT {self.NAME}")
        self.release()


__all__ = ["BUSY_TIMEOUT_MS", "Savepoint", "create", "discard", "read_only", "sqlite_file"]
