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
accepts only the read commands (:data:`nua.model.commands.READ_COMMANDS`). A failed read is an error
for that asker alone: the connection is dropped and the next read opens a new one,
so a database outage fails reads without ending the actor (or, by restarts, the
daemon). While an outage lasts, the reader also looks by itself four times a second
(a :class:`~nua.actors.ticker.Ticker` tells it :class:`CheckReadable`), so that
``status`` stops calling it degraded once the database is back, read or not; the
ticker sleeps while the database is readable, so an idle daemon never wakes for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from nua.actors.directory import DB_READER
from nua.actors.health import Health
from nua.actors.supervised import ChildContext, SupervisedActor
from nua.actors.ticker import Ticker
from nua.model import commands as cmd
from nua.model import engine as db_engine
from nua.model import operations
from nua.model.errors import InternalError, ModelError, UnavailableError
from nua.model.outage import Outage, OutageError, classify, no_nua_database
from nua.model.schema import SCHEMA_VERSION, meta, recorded_version
from nua.settings import Settings

# Four looks a second while the database cannot be read, as the writer's.
CHECK_INTERVAL_S = 0.25


@dataclass(frozen=True)
class CheckReadable:
    """While degraded, try one small read: a success clears the reader's condition. Told by its ticker."""


class DbReader(SupervisedActor):
    """Owns a read-only engine and one connection; answers each read command in its own transaction.

    ``check_interval_s``: how often the ticker tells :class:`CheckReadable`
    (``None``: no ticker; the caller tells it).
    """

    def __init__(
        self,
        context: ChildContext,
        settings: Settings,
        health: Health | None = None,
        *,
        check_interval_s: float | None = CHECK_INTERVAL_S,
    ) -> None:
        super().__init__(context)
        self.settings = settings
        self.health = health or Health()
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._path = db_engine.sqlite_file(settings.db)
        # The (device, inode) of the SQLite file the connection has open.
        self._identity: tuple[int, int] | None = None
        self._degraded = False
        self._check_interval_s = check_interval_s
        self._ticker: Ticker | None = None

    def setup(self) -> None:
        # Connected at the first read: the reader starts even while the database is away.
        self._engine = db_engine.create(self.settings.db, reader=True)
        if self._check_interval_s is not None:
            # Asleep until the first outage (see _pace).
            self._ticker = Ticker(self.actor_ref, CheckReadable(), None, f"{DB_READER}-ticker")
            self._ticker.start()
        self.log.info("db_reader_started", url=self.settings.db.safe_url)

    def cleanup(self, error: BaseException | None) -> None:  # noqa: ARG002 - the same either way
        self._close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, cmd.READ_COMMANDS):
            return self._read(message)
        if isinstance(message, CheckReadable):
            self._check_readable()
            return None
        return super().on_receive(message)

    def _read(self, command: Any) -> Any:
        try:
            conn = self._connection()
            try:
                value = operations.execute(conn, command)
            finally:
                conn.rollback()  # ends the read transaction: the next read sees newer commits
        except ModelError:
            raise
        except Exception as exc:
            outage = classify(exc)
            if outage is None:
                self.log.exception("read_failed", command=type(command).__name__)
                self._drop_connection()
                raise InternalError(f"{type(command).__name__} failed; see the daemon's log") from None
            self._unavailable(outage)
            raise UnavailableError(outage.reason) from None
        self._readable()
        return value

    def _readable(self) -> None:
        self._degraded = False
        self._pace()
        if self.health.recover(DB_READER):
            self.log.warning("database_readable")

    def _check_readable(self) -> None:
        """The ticker's look: while degraded, read nua's own table (a file without it is no nua database)."""
        if not self._degraded:
            return
        try:
            conn = self._connection()
            try:
                conn.execute(select(func.count()).select_from(meta)).scalar()
            finally:
                conn.rollback()
        except Exception as exc:  # noqa: BLE001 - still unreadable, whatever the reason: look again later
            outage = classify(exc)
            if outage is not None:
                self._unavailable(outage)  # logged once per reason
            else:
                self._drop_connection()  # not a nua database (yet): quiet, the reads say why
            return
        self._readable()

    def _unavailable(self, outage: Outage) -> None:
        """Degrade (logged once per change of reason); a spent connection is replaced at the next read."""
        self._degraded = True
        self._pace()
        if outage.reconnect:
            self._drop_connection()
        if self.health.degrade(DB_READER, outage.reason):
            self.log.error("database_unreadable", reason=outage.reason)

    def _pace(self) -> None:
        """The ticker's looks: every ``check_interval_s`` while degraded, none while readable."""
        if self._ticker is not None:
            self._ticker.set_interval(self._check_interval_s if self._degraded else None)

    def _connection(self) -> Connection:
        """The connection, (re)opened if there is none or if the SQLite file was replaced since."""
        if self._engine is None:
            msg = "the DB reader has no engine (not started, or stopped)"
            raise RuntimeError(msg)
        identity = self._file_identity()
        if self._conn is not None and identity != self._identity:
            self._drop_connection()  # it reads a file that is no longer the database's
        if self._conn is None:
            conn = self._engine.connect()
            try:
                self._check_schema(conn)
            except BaseException:
                db_engine.discard(conn)
                raise
            self._conn, self._identity = conn, identity
        return self._conn

    def _check_schema(self, conn: Connection) -> None:
        """Refuse, as an outage, a database that is not (or not yet) a nua database this nua reads.

        A file put back at the path may be anything: every read of it would
        otherwise fail as a bug, a traceback in the log per client call.
        """
        try:
            version = recorded_version(conn)
        finally:
            conn.rollback()
        where = self._path or self.settings.db.safe_url
        if version is None:
            raise no_nua_database(where)
        if version > SCHEMA_VERSION:
            reason = f"{where} holds a newer schema (version {version}); restore the daemon's database there"
            raise OutageError(Outage(reason, reconnect=True))

    def _file_identity(self) -> tuple[int, int] | None:
        """The (device, inode) at the SQLite file's path (``None`` for another backend); OutageError when gone."""
        if self._path is None:
            return None
        path: Path = self._path
        try:
            found = path.stat()
        except OSError as exc:
            reason = f"the database file {path} cannot be read ({exc.strerror or type(exc).__name__})"
            raise OutageError(Outage(reason, reconnect=True)) from None
        return found.st_dev, found.st_ino

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not db_engine.discard(conn):  # never back into the pool: it may be the broken one
            self.log.warning("reader_connection_not_closed")

    def _close(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        conn, self._conn = self._conn, None
        engine, self._engine = self._engine, None
        try:
            if conn is not None:
                conn.close()
        finally:
            if engine is not None:
                engine.dispose()


__all__ = ["DbReader"]
