"""The DB writer: the one actor that writes the database, with group commit.

Every change (and every read that must see the changes) is a command message
(:mod:`nua.model.commands`); the reply future resolves once the transaction that
holds it is durable. When several commands wait in the mailbox, the writer takes
them all (up to ``[db] max_batch``) and applies them in one transaction, each in
its own SAVEPOINT so that one bad command fails alone; after the single commit it
resolves every future. A durable commit costs a disk flush, so sharing one between
many commands is what makes the writer fast under concurrent load.

Failure semantics:

- a command's typed error (:class:`~nua.model.errors.ModelError`) goes to its
  asker; the actor carries on;
- an unexpected error inside one command rolls back its savepoint and becomes an
  :class:`~nua.model.errors.InternalError` for that command alone;
- an error of the transaction itself (BEGIN, a savepoint, COMMIT) fails every
  command of the batch with an InternalError, then crashes the actor so that its
  supervisor restarts it with a fresh connection;
- a :class:`~nua.actors.messages.Crash` met inside a batch (fault injection) fails
  the batch's uncommitted commands the same way; told, it crashes the actor.

Nothing is acknowledged before its commit, so a crash at any point loses only
unacknowledged work.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import pykka
from sqlalchemy.engine import Connection, Engine

from nua.actors._supervised import ChildContext, InjectedFaultError, SupervisedActor, describe
from nua.actors.health import Health
from nua.actors.messages import Crash
from nua.model import engine as db_engine
from nua.model import operations
from nua.model.base import transaction_time
from nua.model.commands import COMMAND_TYPES
from nua.model.errors import InternalError, ModelError
from nua.model.schema import ensure_schema
from nua.model.setting import initial_settings
from nua.settings import Settings


class _Inbox(queue.Queue[Any]):
    """The actor's mailbox, remembering the envelope taken last.

    pykka hands ``on_receive`` the message without its envelope; the writer needs
    the envelope's reply future to resolve it itself, after the batch's commit.
    Only the actor's thread takes from the mailbox, so one attribute suffices.
    """

    current: Any = None

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        envelope = super().get(block, timeout)
        self.current = envelope
        return envelope

    def take_while(self, accept: tuple[type[Any], ...], limit: int) -> list[Any]:
        """Take up to ``limit`` envelopes from the head while their message is one of ``accept``.

        One lock round for the whole run instead of one ``get_nowait`` per envelope;
        the first envelope not accepted stays at the head, in its turn.
        """
        taken: list[Any] = []
        with self.mutex:
            while len(taken) < limit and self._qsize() and isinstance(self.queue[0].message, accept):
                taken.append(self._get())
            if taken:
                self.not_full.notify(len(taken))
        return taken


@dataclass(frozen=True)
class WriterStats:
    """Asks the writer how it has batched so far; answered with a dict of counters.

    ``batches`` transactions applied, ``commands`` in them, ``largest_batch``: the
    benchmark and the tests read the effect of group commit here.
    """


@dataclass
class _Pending:
    """One message of a batch and where its reply goes (``None`` when it was told)."""

    message: Any
    reply_to: pykka.Future[Any] | None


class _Outcome(NamedTuple):
    """A command's result or its error (a tuple: one is built per command, in the serial section)."""

    value: Any = None
    error: ModelError | None = None


class _BatchAbortedError(Exception):
    """The batch cannot commit; ``crash`` says whether ``cause`` must then kill the actor."""

    def __init__(self, cause: BaseException, *, crash: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.crash = crash


def _abort_on_crash(pending: _Pending) -> None:
    """A Crash inside a batch aborts it: asked, the fault is its asker's error; told, it kills the actor."""
    if isinstance(pending.message, Crash):
        fault = InjectedFaultError(pending.message.reason)
        raise _BatchAbortedError(fault, crash=pending.reply_to is None)


# What a batch takes from the mailbox: the commands, and Crash (fault injection mid-batch).
_BATCHED: tuple[type[Any], ...] = (*COMMAND_TYPES, Crash)


class DbWriter(SupervisedActor):
    """Owns the engine and one connection; applies commands in group-committed batches."""

    def __init__(self, context: ChildContext, settings: Settings, health: Health | None = None) -> None:
        super().__init__(context)
        self.settings = settings
        self.health = health or Health()
        self.max_batch = max(1, settings.db.max_batch)
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._inbox = cast("_Inbox", self.actor_inbox)
        self._stats = {"batches": 0, "commands": 0, "largest_batch": 0}

    @staticmethod
    def _create_actor_inbox() -> queue.Queue[Any]:
        return _Inbox()

    # -- lifecycle --------------------------------------------------------------------------

    def on_start(self) -> None:
        self._engine = db_engine.create(self.settings.db)
        self._conn = self._engine.connect()
        with self._conn.begin():
            state = ensure_schema(self._conn, initial_settings(self.settings))
        self.log.info(
            "db_writer_started",
            url=self.settings.db.safe_url,
            schema_version=state.version,
            created=state.created,
            upgraded_from=state.upgraded_from,
            max_batch=self.max_batch,
        )

    def on_stop(self) -> None:
        self._close()

    def on_failure(self, *_exc_info: object) -> None:
        self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        engine, self._engine = self._engine, None
        try:
            if conn is not None:
                conn.close()  # rolls back whatever is uncommitted
        finally:
            if engine is not None:
                engine.dispose()

    # -- messages ---------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, WriterStats):
            return dict(self._stats)
        if not isinstance(message, COMMAND_TYPES):
            return super().on_receive(message)
        head = self._inbox.current
        if head is None or head.message is not message:  # pragma: no cover - pykka changed how it delivers
            msg = "the DB writer lost track of its current envelope"
            raise RuntimeError(msg)
        # Take over the head's reply: every future of the batch is resolved here, after
        # the commit, and pykka's loop must not answer it early (or twice).
        batch = [_Pending(message, head.reply_to)]
        head.reply_to = None
        # The waiting commands (and Crash) join the batch; a stop or a ping ends the
        # run and stays first in the mailbox: its turn comes right after the batch.
        waiting = self._inbox.take_while(_BATCHED, self.max_batch - 1)
        batch += [_Pending(envelope.message, envelope.reply_to) for envelope in waiting]
        self._run(batch)
        return None

    # -- batches ----------------------------------------------------------------------------

    def _run(self, batch: list[_Pending]) -> None:
        self._stats["batches"] += 1
        self._stats["commands"] += len(batch)
        self._stats["largest_batch"] = max(self._stats["largest_batch"], len(batch))
        try:
            with transaction_time():  # one timestamp for the rows of one commit
                outcomes = self._apply(batch)
        except _BatchAbortedError as aborted:
            self._fail_all(batch, aborted.cause)
            if aborted.crash:
                raise aborted.cause from None
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            self._resolve(pending, outcome)
        # Hand the GIL over once: the askers just answered can then queue their next
        # command before the next drain, and the next commit carries more of them
        # (about 6 commands a commit instead of 4 with 8 blocking askers). It is not
        # a timed wait: with no other runnable thread it returns at once.
        time.sleep(0)

    def _apply(self, batch: list[_Pending]) -> list[_Outcome]:
        """Apply ``batch`` in one transaction and commit it; raise _BatchAbortedError when it cannot commit."""
        conn = self._connection()
        outcomes: list[_Outcome] = []
        # A lone command needs no savepoint: its own transaction is rolled back when it fails.
        isolate = len(batch) > 1
        try:
            transaction = conn.begin()
        except Exception as exc:
            raise _BatchAbortedError(exc, crash=True) from exc
        try:
            for pending in batch:
                _abort_on_crash(pending)
                outcomes.append(self._apply_one(conn, pending.message, isolate=isolate))
            if not isolate and outcomes[0].error is not None:
                transaction.rollback()
            else:
                transaction.commit()
        except _BatchAbortedError:
            self._rollback(conn)
            raise
        except Exception as exc:
            self._rollback(conn)
            raise _BatchAbortedError(exc, crash=True) from exc
        return outcomes

    def _apply_one(self, conn: Connection, command: Any, *, isolate: bool) -> _Outcome:
        """Apply one command; when it fails, its savepoint (if any) is rolled back and the error is its outcome."""
        savepoint = db_engine.Savepoint(conn) if isolate else None
        try:
            value = operations.execute(conn, command)
        except ModelError as error:
            if savepoint is not None:
                savepoint.rollback()
            return _Outcome(error=error)
        except Exception:
            self.log.exception("command_failed", command=type(command).__name__)
            if savepoint is not None:
                savepoint.rollback()
            return _Outcome(error=InternalError(f"{type(command).__name__} failed; see the daemon's log"))
        if savepoint is not None:
            savepoint.release()
        return _Outcome(value=value)

    def _rollback(self, conn: Connection) -> None:
        try:
            if conn.in_transaction():
                conn.rollback()
        except Exception:  # the original error matters more; the connection is closed on crash anyway
            self.log.exception("rollback_failed")

    def _connection(self) -> Connection:
        if self._conn is None:
            msg = "the DB writer has no connection (not started, or stopped)"
            raise RuntimeError(msg)
        return self._conn

    # -- replies ----------------------------------------------------------------------------

    def _resolve(self, pending: _Pending, outcome: _Outcome) -> None:
        if pending.reply_to is None:
            if outcome.error is not None:
                command = type(pending.message).__name__
                self.log.warning("told_command_failed", command=command, error=str(outcome.error))
            return
        if outcome.error is None:
            pending.reply_to.set(outcome.value)
        else:
            error = outcome.error
            pending.reply_to.set_exception((type(error), error, None))

    def _fail_all(self, batch: list[_Pending], cause: BaseException) -> None:
        """Fail every future of an aborted batch: nothing of it was committed."""
        self.log.error("batch_aborted", commands=len(batch), error=describe(cause))
        for pending in batch:
            if pending.reply_to is None:
                continue
            if isinstance(pending.message, Crash):
                pending.reply_to.set_exception((type(cause), cause, cause.__traceback__))
                continue
            # One instance per future: each asker raises (and so mutates) its own.
            error = InternalError(f"not applied: the batch was aborted ({describe(cause)})")
            pending.reply_to.set_exception((InternalError, error, None))
