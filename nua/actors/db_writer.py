"""The DB writer: the one actor that writes the database, with group commit.

Every change (and every read that must see the changes) is a command message
(:mod:`nua.model.commands`), sent as a :class:`~nua.actors.call.Call`; its reply
resolves once the transaction that holds it is durable. A durable commit costs a
disk flush, so sharing one between many commands is what makes the writer fast
under concurrent load: group commit. The first call to arrive opens a batch and the
writer tells itself a :class:`_Flush` marker, which queues behind every command
already in the mailbox; those join the batch as they arrive (up to ``[db]
max_batch``), and when the marker comes the batch is applied in one transaction,
each command in its own SAVEPOINT so that one bad command fails alone; after the
single commit every reply is resolved. Any other message (a ping, a stop, a fault)
first ends the open batch, so it keeps its place in the order of the mailbox. A
command asked with pykka's ``ask`` instead of a call runs at once, in a batch of
its own.

Failure semantics:

- a command's typed error (:class:`~nua.model.errors.ModelError`) goes to its
  asker; the actor carries on;
- an unexpected error inside one command rolls back its savepoint and becomes an
  :class:`~nua.model.errors.InternalError` for that command alone;
- an error that is about the environment (:mod:`nua.model.outage`: disk full,
  read-only file, I/O error, lost connection, lock held too long, the SQLite file
  deleted or replaced) fails the batch's commands with an
  :class:`~nua.model.errors.UnavailableError` and *degrades* the writer: it keeps
  running, reports the condition to :class:`~nua.actors.health.Health`, and
  until the cause goes it refuses writes at once (nothing queues up), while
  read-only commands still run when the connection can read. It retries with
  capped exponential backoff (``[db] reconnect_max_s``): a probe reopens the
  connection if it was lost and commits one small write; when that works, the
  writer is healthy again. Restarting the actor would not help, so an outage never
  spends the supervisor's restart intensity;
- any other error of the transaction itself (BEGIN, a savepoint, COMMIT) is a
  bug: it fails every command of the batch with an InternalError, then crashes
  the actor so that its supervisor restarts it with a fresh connection;
- a :class:`~nua.actors.messages.Crash` (fault injection) is no command: the open
  batch commits first, then it is handled as any supervised actor handles it; a
  crash fails the calls still queued with ``ActorDeadError``.

Nothing is acknowledged before its commit, so a crash at any point loses only
unacknowledged work.

A SQLite file is watched: its identity (device, inode) when opened is compared
with the file at its path before and after each commit, and while idle whenever
inotify reports the name created, deleted or renamed in its directory (a
:class:`~nua.actors.ticker.Ticker` with a :class:`~nua.actors.file_watch.FileWatch`
tells the actor :class:`CheckDatabase`), and every :data:`IDLE_CHECK_S` for what
inotify cannot see (every ``check_interval_s`` without inotify). A file deleted
or replaced makes the writer degraded, so nothing is acknowledged into a file
that is gone. The probe then reopens the path without creating it: a nua
database restored there (its schema checked) brings the writer back; no file, or
a file that is not a nua database, keeps it refusing.
Only the daemon's first start creates a database file.

The audit trail: an :class:`~nua.model.commands.Audited` command's change is applied
in its savepoint, as any command; the records of the batch's changes that succeeded
(and of its denied calls) are then inserted together, in order, in one statement
(on SQLite a multi-row INSERT, one per hundred records) before the commit, so each
commits with its change and a failed change has none.
Once the batch has committed and its replies are sent, the writer logs one line per
denied call (the gateway logs each change's call once answered,
:mod:`nua.rpc.call_log`). The same ticker prunes the records
older than ``[audit] keep_days``, hourly, at most :data:`PRUNE_MOST` a time (more
follow at the next tick), so that a prune never holds the writer for long.

The ticker looks every ``check_interval_s`` (four times a second) only while
there is something to do soon: an outage to retry, a prune to finish. Otherwise
it sleeps until the file changes or :data:`IDLE_CHECK_S` passes: an idle daemon
does not wake for the writer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, cast

from sqlalchemy import delete, insert
from sqlalchemy.engine import Connection, Engine, Transaction

from nua.actors import call
from nua.actors.change_events import change_event
from nua.actors.directory import DB_WRITER
from nua.actors.events import EventHub
from nua.actors.file_watch import IDENTITY, watch_or_none
from nua.actors.health import Health
from nua.actors.log_thread import LogThread
from nua.actors.supervised import ChildContext, SupervisedActor, describe
from nua.actors.ticker import Ticker
from nua.model import engine as db_engine
from nua.model import operations
from nua.model.base import transaction_time, utcnow
from nua.model.commands import COMMAND_TYPES, READ_COMMANDS, Audited, PruneAudit, RecordDenied
from nua.model.errors import InternalError, ModelError, UnavailableError
from nua.model.outage import Outage, OutageError, classify, no_nua_database
from nua.model.schema import SchemaError, SchemaState, ensure_schema, meta, recorded_version
from nua.settings import Settings

# Four looks a second during an outage (and at the database file, without inotify).
CHECK_INTERVAL_S = 0.25
# While all is well: the look behind inotify (for what it cannot see) and the audit prune's pace.
IDLE_CHECK_S = 5.0
# The first retry after an outage; each failed one doubles it, up to [db] reconnect_max_s.
FIRST_RETRY_S = 0.1
# The row the recovery probe writes: a commit that succeeds proves the database takes writes.
PROBE_KEY = "writer_probe"
# How often audit records past their retention are removed, and the most removed in one transaction.
PRUNE_INTERVAL_S = 3600.0
PRUNE_MOST = 10_000


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WriterStats:
    """Asks the writer how it has batched so far; answered with a dict of counters.

    ``batches`` transactions applied, ``commands`` in them, ``largest_batch``: the
    benchmark and the tests read the effect of group commit here.
    """


@dataclass(frozen=True)
class CheckDatabase:
    """Look at the database file now, and retry an unavailable database if its backoff has passed.

    Told by the writer's ticker; a test may tell it too.
    """


@dataclass(frozen=True)
class _Flush:
    """Apply batch number ``batch`` now: every command queued before this marker has joined it.

    A batch ended earlier (full, or by another message) ignores its marker.
    """

    batch: int


@dataclass
class _Pending:
    """One command of a batch and where its reply goes."""

    message: Any
    reply: Future[Any]


class _Outcome(NamedTuple):
    """A command's result or its error (a tuple: one is built per command, in the serial section)."""

    value: Any = None
    error: ModelError | None = None


class _BatchAbortedError(Exception):
    """The batch cannot commit because of ``cause``: an ``outage`` to wait out, else a bug that crashes the actor."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.outage = classify(cause)


class DbWriter(SupervisedActor):
    """Owns the engine and one connection; applies commands in group-committed batches.

    ``clock`` times the retries of an outage and the audit prunes, ``check_interval_s``
    the looks at the database file and the prunes (``None``: no ticker; the caller
    tells :class:`CheckDatabase`); ``wall_clock`` says how old an audit record is.
    """

    def __init__(
        self,
        context: ChildContext,
        settings: Settings,
        health: Health | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        check_interval_s: float | None = CHECK_INTERVAL_S,
        wall_clock: Callable[[], datetime] = _utc_now,
        events: EventHub | None = None,
    ) -> None:
        super().__init__(context)
        self.settings = settings
        self.health = health or Health()
        # Where each committed change is published (user.changed, setting.changed, ...).
        self.events = events
        self.max_batch = max(1, settings.db.max_batch)
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._batch: list[_Pending] = []  # the batch that the next _Flush applies
        self._batch_number = 0
        self._stats = {"batches": 0, "commands": 0, "largest_batch": 0}
        self._clock = clock
        self._check_interval_s = check_interval_s
        self._ticker: Ticker | None = None
        self._idle_check_s = IDLE_CHECK_S
        self._audit_log: LogThread | None = None  # the lines of audited calls, written in a thread of their own
        self._path = db_engine.sqlite_file(settings.db)
        self._identity: tuple[int, int] | None = None
        self._outage: Outage | None = None
        self._down_since = 0.0
        self._up_since = float("-inf")
        self._retry_delay = FIRST_RETRY_S
        self._retry_at = 0.0
        self._max_retry_delay = max(FIRST_RETRY_S, settings.db.reconnect_max_s)
        self._wall_clock = wall_clock
        keep_days = settings.audit.keep_days
        self._keep = timedelta(days=keep_days) if keep_days > 0 else None
        self._prune_at = float("-inf")  # the first look prunes

    # -- lifecycle --------------------------------------------------------------------------

    def setup(self) -> None:
        # Only the daemon's first writer may create the database; a restarted one
        # reopens what is there, as a recovery does.
        first = self.context.generation == 1
        self._engine = db_engine.create(self.settings.db, create_file=first)
        try:
            self._open(first=first)
        except Exception as exc:
            outage = classify(exc)
            if first or outage is None:
                # At the daemon's start, a database it cannot open is a reason not to start.
                self._close()
                raise
            self._enter_outage(outage)
        else:
            # A restarted writer inherits its predecessor's condition until it has proven better.
            self._recovered()
        self._audit_log = LogThread(self.log, f"{DB_WRITER}-log")
        if self._check_interval_s is not None:
            interval = self._check_interval_s
            watch = watch_or_none([self._path], IDENTITY, self.log, interval) if self._path is not None else None
            self._idle_check_s = IDLE_CHECK_S if watch is not None or self._path is None else interval
            self._ticker = Ticker(
                self.actor_ref, CheckDatabase(), interval, f"{DB_WRITER}-ticker", watch=watch, fallback_s=interval
            )
            self._ticker.start()

    def cleanup(self, error: BaseException | None) -> None:
        try:
            if error is None:
                self._flush()  # stopped: the calls queued before the stop are answered
            elif self._batch:
                self._fail_all(self._batch, error)
                self._batch = []
        finally:
            self._close()

    def _close(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        if self._audit_log is not None:
            self._audit_log.stop()  # the lines of the last batches are written
        self._drop_connection()
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def _open(self, *, first: bool) -> None:
        """Connect and check the schema (create it, when ``first``); record the SQLite file's identity."""
        if self._engine is None:
            msg = "the DB writer has no engine (stopped)"
            raise RuntimeError(msg)
        conn = self._engine.connect()
        try:
            state = self._ensure_schema(conn, first=first)
            identity = self._stat() if self._path is not None else None
        except BaseException:
            db_engine.discard(conn)
            raise
        self._conn, self._identity = conn, identity
        self.log.info(
            "db_writer_started" if first else "db_writer_reopened",
            url=self.settings.db.safe_url,
            schema_version=state.version,
            created=state.created,
            upgraded_from=state.upgraded_from,
            max_batch=self.max_batch,
        )

    def _reopen(self) -> None:
        """Connect again after an outage, through a new engine that never creates the SQLite file."""
        if self._engine is not None:
            self._engine.dispose()
        self._engine = db_engine.create(self.settings.db, create_file=False)
        if self._path is not None:
            self._stat()  # no file: say it was deleted, rather than SQLite's "cannot open"
        self._open(first=False)

    def _ensure_schema(self, conn: Connection, *, first: bool) -> SchemaState:
        """Create or upgrade the schema; reopening, a database without one is an outage, not a new start."""
        with conn.begin():
            if not first and recorded_version(conn) is None:
                raise no_nua_database(self._path or self.settings.db.safe_url)
            return ensure_schema(conn)

    def _drop_connection(self) -> None:
        """Close the connection for good (its driver connection too: it is not reused)."""
        conn, self._conn = self._conn, None
        if conn is not None and not db_engine.discard(conn):
            self.log.debug("connection_close_failed")

    # -- messages ---------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, call.Call) and isinstance(message.message, COMMAND_TYPES):
            self._join(message)
            return None
        if isinstance(message, _Flush):
            if message.batch == self._batch_number:
                self._flush()
            return None
        # Anything else takes its turn after the commands queued before it.
        self._flush()
        if isinstance(message, WriterStats):
            return dict(self._stats)
        if isinstance(message, CheckDatabase):
            self._check_database()
            return None
        if isinstance(message, COMMAND_TYPES):
            return self._run_alone(message)
        return super().on_receive(message)

    # -- batches ----------------------------------------------------------------------------

    def _join(self, received: call.Call) -> None:
        """Add a command to the open batch, opening one (and queueing its marker) if there is none."""
        if not call.accept(self.actor_urn, received):
            return  # its caller has given up: a command nobody waits for is not applied
        self._batch.append(_Pending(received.message, received.reply))
        if len(self._batch) == 1:
            self._batch_number += 1
            self.actor_ref.tell(_Flush(self._batch_number))
        elif len(self._batch) >= self.max_batch:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self._run(batch)

    def _run_alone(self, command: Any) -> Any:
        """Apply a command asked directly (not called): its own batch, its outcome returned or raised.

        A bug of the transaction is raised to the asker too (pykka's rule for asks):
        only a call's batch, which is told, crashes the writer for a restart.
        """
        reply: Future[Any] = Future()
        reply.set_running_or_notify_cancel()
        self._run([_Pending(command, reply)])
        return reply.result(timeout=0)

    def _run(self, batch: list[_Pending]) -> None:
        self._stats["batches"] += 1
        self._stats["commands"] += len(batch)
        self._stats["largest_batch"] = max(self._stats["largest_batch"], len(batch))
        try:
            self._retry_if_due()
        except Exception as exc:  # a bug while reconnecting: the batch's askers must hear of it first
            self._fail_all(batch, exc)
            raise
        # Healthy: the whole batch. Degraded, or once an outage aborts the batch: its
        # reads only (nothing of it was committed, so they see only committed data).
        for writable in (True, False) if self._outage is None else (False,):
            try:
                with transaction_time():  # one timestamp for the rows of one commit
                    outcomes = self._apply(batch, writable=writable)
            except _BatchAbortedError as aborted:
                if aborted.outage is not None:
                    self._enter_outage(aborted.outage)
                    continue
                self._fail_all(batch, aborted.cause)
                raise aborted.cause from None
            break
        else:
            outcomes = [self._refused() for _ in batch]
        self._publish(batch, outcomes)
        for pending, outcome in zip(batch, outcomes, strict=True):
            self._resolve(pending, outcome)
        self._log_audited(batch, outcomes)
        # Hand the GIL over once: the askers just answered can then queue their next
        # command before the next drain, and the next commit carries more of them
        # (about 6 commands a commit instead of 4 with 8 blocking askers). It is not
        # a timed wait: with no other runnable thread it returns at once.
        time.sleep(0)

    def _apply(self, batch: list[_Pending], *, writable: bool) -> list[_Outcome]:
        """Apply ``batch`` in one transaction and commit it; raise _BatchAbortedError when it cannot commit.

        Not ``writable``: only its read commands run, in a read-only transaction
        rolled back at the end; the others are refused as unavailable.
        """
        conn = self._conn
        if conn is None or not (writable or any(isinstance(p.message, READ_COMMANDS) for p in batch)):
            return [self._refused() for _ in batch]
        outcomes = []
        # A lone command needs no savepoint: its own transaction is rolled back when it fails.
        isolate = len(batch) > 1
        try:
            if writable:
                transaction = conn.begin()
            else:
                with db_engine.read_only(conn):
                    transaction = conn.begin()
        except Exception as exc:
            raise _BatchAbortedError(exc) from exc
        records: list[operations.Record] = []  # of the Audited changes applied and the denied calls, in order
        try:
            for pending in batch:
                if writable:
                    outcomes.append(self._apply_change(conn, pending.message, records, isolate=isolate))
                elif isinstance(pending.message, READ_COMMANDS):
                    outcomes.append(self._apply_one(conn, pending.message, isolate=isolate))
                else:
                    outcomes.append(self._refused())
            if writable and (isolate or outcomes[0].error is None):
                self._commit(conn, transaction, records)
            else:
                transaction.rollback()
        except _BatchAbortedError:
            self._rollback(conn)
            raise
        except Exception as exc:
            self._rollback(conn)
            raise _BatchAbortedError(exc) from exc
        return outcomes

    def _commit(self, conn: Connection, transaction: Transaction, records: list[operations.Record]) -> None:
        """Store the batch's audit records, then commit; acknowledged only if the file is still the database's."""
        if records:
            # One statement for the batch's records, in its transaction: each commits with
            # its change, and if it fails nothing of the batch commits.
            operations.record_all(conn, records)
        self._check_file()
        transaction.commit()
        self._check_file()

    def _apply_change(
        self, conn: Connection, command: Any, records: list[operations.Record], *, isolate: bool
    ) -> _Outcome:
        """Apply one command of a writable batch; the audit record it leaves, if any, goes to ``records``.

        An Audited change is applied in its savepoint and its record kept for the
        batch's one insert (:func:`~nua.model.operations.record_all`), as is a
        denied call's record.
        """
        if isinstance(command, Audited):
            outcome = self._apply_one(conn, command.command, isolate=isolate)
            if outcome.error is None:
                records.append((command.entry, "ok", ""))  # operations.record_of's, without the call
            return outcome
        if isinstance(command, RecordDenied):
            records.append(operations.record_of(command))
            return _Outcome()
        return self._apply_one(conn, command, isolate=isolate)

    def _apply_one(self, conn: Connection, command: Any, *, isolate: bool) -> _Outcome:
        """Apply one command; when it fails, its savepoint (if any) is rolled back and the error is its outcome."""
        savepoint = db_engine.Savepoint(conn) if isolate else None
        try:
            value = operations.execute(conn, command)
        except ModelError as error:
            if savepoint is not None:
                savepoint.rollback()
            return _Outcome(error=error)
        except Exception as exc:
            if classify(exc) is not None:
                raise  # the environment, not this command: the whole batch is aborted
            self.log.exception("command_failed", command=type(command).__name__)
            if savepoint is not None:
                savepoint.rollback()
            return _Outcome(error=InternalError(f"{type(command).__name__} failed; see the daemon's log"))
        if savepoint is not None:
            savepoint.release()
        return _Outcome(value=value)

    def _rollback(self, conn: Connection) -> None:
        # get_transaction, not in_transaction: a transaction whose commit failed is
        # inactive but still there, and the next begin() would refuse to start. Such
        # a rollback does not reach the driver, whose transaction may still be open
        # (SQLite leaves it so after some failed COMMITs): roll that back too.
        try:
            if conn.get_transaction() is not None:
                conn.rollback()
            if not conn.invalidated:
                conn.connection.driver_connection.rollback()  # type: ignore[union-attr]
        except Exception as exc:  # the original error matters more; the connection is closed on crash anyway
            if classify(exc) is None:
                self.log.exception("rollback_failed")

    # -- outages --------------------------------------------------------------------------

    def _stat(self) -> tuple[int, int]:
        """The (device, inode) of the file at the database's path; OutageError when there is none."""
        path = cast("Path", self._path)
        try:
            found = path.stat()
        except FileNotFoundError:
            reason = f"the database file {path} was deleted (restore it there; a new one is made only at start)"
            raise OutageError(Outage(reason, reconnect=True)) from None
        except OSError as exc:
            reason = f"the database file {path} cannot be examined ({exc.strerror or type(exc).__name__})"
            raise OutageError(Outage(reason, reconnect=True)) from None
        return found.st_dev, found.st_ino

    def _check_file(self) -> None:
        """Raise OutageError unless the file at the database's path is the one the connection has open."""
        if self._path is None or self._identity is None:
            return
        if self._stat() != self._identity:
            raise OutageError(Outage(f"the database file {self._path} was replaced by another file", reconnect=True))

    def _check_database(self) -> None:
        """The ticker's look: notice a lost file while idle; retry an outage when its time has come; prune."""
        if self._outage is None:
            try:
                self._check_file()
            except OutageError as exc:
                self._enter_outage(exc.outage)
                return
            self._prune_if_due()
        else:
            self._retry_if_due()
        self._pace()

    def _pace(self) -> None:
        """The ticker's looks: every ``check_interval_s`` while an outage or a prune is under way, else idle."""
        if self._ticker is None or self._check_interval_s is None:
            return
        pruning = self._keep is not None and self._clock() >= self._prune_at
        busy = self._outage is not None or pruning
        self._ticker.set_interval(self._check_interval_s if busy else self._idle_check_s)

    # -- the audit trail ------------------------------------------------------------------

    def _prune_if_due(self) -> None:
        """Remove the audit records past ``[audit] keep_days``, in a batch of its own, when the time has come."""
        if self._keep is None or self._clock() < self._prune_at:
            return
        reply: Future[Any] = Future()
        reply.set_running_or_notify_cancel()
        self._run([_Pending(PruneAudit(self._wall_clock() - self._keep, PRUNE_MOST), reply)])
        try:
            removed = reply.result(timeout=0)
        except ModelError as exc:  # an outage (logged as such): tried again at the next interval
            self.log.warning("audit_prune_failed", error=exc.message)
            removed = 0
        if removed:
            self.log.info("audit_pruned", removed=removed, keep_days=self._keep.days)
        # A full prune leaves more behind: the next tick goes on.
        self._prune_at = self._clock() + (0.0 if removed >= PRUNE_MOST else PRUNE_INTERVAL_S)

    def _publish(self, batch: list[_Pending], outcomes: list[_Outcome]) -> None:
        """Publish the event of each change the batch committed, before any is acknowledged.

        So a client that has its reply finds the change's event in the stream already.
        """
        if self.events is None:
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            if outcome.error is None:
                made = change_event(pending.message, outcome.value)
                if made is not None:
                    self.events.publish(made[0], **made[1])

    def _log_audited(self, batch: list[_Pending], outcomes: list[_Outcome]) -> None:
        """One log line per denied call recorded: who, role, method, the role needed (no params).

        A change has its line from the gateway once its call is answered (``rpc_call``,
        :mod:`nua.rpc.call_log`: with its outcome and duration, a failure too).
        Written by the writer's :class:`~nua.actors.log_thread.LogThread`, outside
        its serial section.
        """
        lines = self._audit_log or self.log
        for pending, outcome in zip(batch, outcomes, strict=True):
            message = pending.message
            if isinstance(message, RecordDenied):
                entry = message.entry
                lines.warning(
                    "rpc_denied",
                    who=entry.who,
                    role=entry.role,
                    method=entry.method,
                    needed=message.needed,
                    recorded=outcome.error is None,
                )
        if self._audit_log is not None:
            self._audit_log.flush()

    def _enter_outage(self, outage: Outage) -> None:
        """Degrade (or stay degraded, perhaps for a new reason); logged once per change."""
        now = self._clock()
        outage = self._on_read_only_file_system(outage)
        if outage.reconnect:
            self._drop_connection()
        if self._outage is None:
            self._down_since = now
            # Down again soon after coming back (a nearly full disk that takes the
            # probe's small write but not the next batch): keep backing off, so that
            # the writer does not flap (and log) several times a second.
            self._back_off(now, afresh=now - self._up_since >= self._max_retry_delay)
        self._outage = outage
        self._pace()
        if self.health.degrade(DB_WRITER, outage.reason):
            self.log.error(
                "database_unavailable",
                reason=outage.reason,
                retry_in_s=round(max(0.0, self._retry_at - now), 3),
                connection_kept=self._conn is not None,
            )

    def _back_off(self, now: float, *, afresh: bool = False) -> None:
        """Set the next retry: the first delay again when ``afresh``, else twice the last, up to the cap."""
        self._retry_delay = FIRST_RETRY_S if afresh else min(self._retry_delay * 2, self._max_retry_delay)
        self._retry_at = now + self._retry_delay

    def _on_read_only_file_system(self, outage: Outage) -> Outage:
        """Name a read-only file system when that is why: SQLite reports only "cannot open" or "read-only"."""
        if self._path is None or "read-only" in outage.reason:
            return outage
        try:
            read_only = bool(os.statvfs(self._path.parent).f_flag & os.ST_RDONLY)
        except OSError:
            return outage
        if not read_only:
            return outage
        return Outage(f"the file system holding {self._path} is read-only ({outage.reason})", outage.reconnect)

    def _retry_if_due(self) -> None:
        """If degraded and its backoff has passed: reopen if needed, and probe with one small commit."""
        if self._outage is None or self._clock() < self._retry_at:
            return
        try:
            if self._conn is None:
                self._reopen()
            self._probe(cast("Connection", self._conn))
        except Exception as exc:
            # A newer schema found on reopening (a restored file): refused like a missing one.
            outage = Outage(str(exc), reconnect=True) if isinstance(exc, SchemaError) else classify(exc)
            if outage is None:
                raise  # a bug, not the environment: the supervisor restarts the actor
            self._back_off(self._clock())
            self._enter_outage(outage)
            return
        self._recovered()

    def _probe(self, conn: Connection) -> None:
        """Commit one small write, as a batch would: it succeeds only if the database takes writes again."""
        try:
            with conn.begin():
                conn.execute(delete(meta).where(meta.c.key == PROBE_KEY))
                conn.execute(insert(meta).values(key=PROBE_KEY, value=utcnow().isoformat()))
                self._check_file()
            self._check_file()
        except Exception:
            self._rollback(conn)
            raise

    def _recovered(self) -> None:
        outage, self._outage = self._outage, None
        self._pace()
        if outage is not None:
            self._up_since = self._clock()
        if self.health.recover(DB_WRITER):
            self.log.warning(
                "database_available",
                was=outage.reason if outage is not None else None,
                after_s=round(self._clock() - self._down_since, 3) if outage is not None else None,
            )

    def _refused(self) -> _Outcome:
        outage = self._outage
        reason = outage.reason if outage is not None else "the database connection is closed"
        return _Outcome(error=UnavailableError(reason))

    # -- replies ----------------------------------------------------------------------------

    @staticmethod
    def _resolve(pending: _Pending, outcome: _Outcome) -> None:
        if outcome.error is None:
            pending.reply.set_result(outcome.value)
        else:
            pending.reply.set_exception(outcome.error)

    def _fail_all(self, batch: list[_Pending], cause: BaseException) -> None:
        """Fail every future of an aborted batch: nothing of it was committed."""
        self.log.error("batch_aborted", commands=len(batch), error=describe(cause))
        for pending in batch:
            # One instance per reply: each caller raises (and so mutates) its own.
            error = InternalError(f"not applied: the batch was aborted ({describe(cause)})")
            pending.reply.set_exception(error)
