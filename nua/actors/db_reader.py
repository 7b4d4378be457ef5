"""The DB reader: answers read-only commands on a connection of its own, beside the writer.

Why: the DB writer applies commands one batch at a time, so a read it runs holds
up every write queued behind it. A page of 1,000 users costs about 8 ms to read
and render and counting 1,000,000 rows about 12 ms on SQLite: inside the writer
that is a write latency of the same order (bench/reads.py measured ``setting_set``
p99 at 2.3x its idle value while a client paged through a million users 100 at
a time, 20x at 1,000 a time). On its own connection a read waits for no write
and delays none but by the CPU it uses.

Consistency: each command is one read transaction. In WAL mode a SQLite read
transaction sees every commit made before it began, and PostgreSQL's read
committed sees every committed transaction; the writer acknowledges a command
only after its commit, so a client always reads what it was told is written.

The reader never changes the database: on SQLite its connection is opened with
``PRAGMA query_only`` and its transactions begin DEFERRED (no write lock), and it
accepts only the read commands (:data:`READ_COMMANDS`). A failed read is an error
for that asker alone: the connection is dropped and the next read opens a new one,
so a database outage fails reads without ending the actor (or, by restarts, the
daemon).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from nua.actors._supervised import ChildContext, SupervisedActor
from nua.model import commands as cmd
from nua.model import engine as db_engine
from nua.model import operations
from nua.model.errors import InternalError, ModelError
from nua.settings import Settings

# The commands that only read, and may be sent to the reader instead of the writer.
READ_COMMANDS: tuple[type[Any], ...] = (
    cmd.GetUser,
    cmd.ListUsers,
    cmd.CountUsers,
    cmd.ListGroups,
    cmd.GroupMembers,
    cmd.GetSetting,
    cmd.ListSettings,
)


def read_engine(settings: Settings) -> Engine:
    """An engine whose connections only read: DEFERRED transactions and ``query_only`` on SQLite."""
    db = settings.db
    url = sa.make_url(db.url)
    if url.get_backend_name() != "sqlite":
        return db_engine.create(db)
    engine = sa.create_engine(url, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # As the writer's engine (nua.model.engine): the driver's own transaction handling
        # off, SQLAlchemy's BEGIN below; but read-only, and never waiting for the write lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA query_only=ON")
            cursor.execute(f"PRAGMA busy_timeout={db_engine.BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute("BEGIN")  # DEFERRED: a snapshot at the first read, no lock on writers
        finally:
            cursor.close()

    return engine


class DbReader(SupervisedActor):
    """Owns a read-only engine and one connection; answers each read command in its own transaction."""

    def __init__(self, context: ChildContext, settings: Settings) -> None:
        super().__init__(context)
        self.settings = settings
        self._engine: Engine | None = None
        self._conn: Connection | None = None

    def on_start(self) -> None:
        # Connected at the first read: the reader starts even while the database is away.
        self._engine = read_engine(self.settings)
        self.log.info("db_reader_started", url=self.settings.db.safe_url)

    def on_stop(self) -> None:
        self._close()

    def on_failure(self, *_exc_info: object) -> None:
        self._close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, READ_COMMANDS):
            return self._read(message)
        return super().on_receive(message)

    def _read(self, command: Any) -> Any:
        try:
            conn = self._connection()
            try:
                return operations.execute(conn, command)
            finally:
                conn.rollback()  # ends the read transaction: the next read sees newer commits
        except ModelError:
            raise
        except Exception:
            self.log.exception("read_failed", command=type(command).__name__)
            self._drop_connection()
            raise InternalError(f"{type(command).__name__} failed; see the daemon's log") from None

    def _connection(self) -> Connection:
        if self._engine is None:
            msg = "the DB reader has no engine (not started, or stopped)"
            raise RuntimeError(msg)
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # never back into the pool: it may be the broken one
            except Exception:  # noqa: BLE001 - already failing; the read's error was logged
                self.log.warning("reader_connection_not_closed")

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        engine, self._engine = self._engine, None
        try:
            if conn is not None:
                conn.close()
        finally:
            if engine is not None:
                engine.dispose()


__all__ = ["READ_COMMANDS", "DbReader", "read_engine"]
