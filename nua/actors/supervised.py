"""The base class of every actor in nua's tree: it tells its supervisor when it ends.

pykka has no links or monitors. A supervised actor reports its own end to a
listener, from its own thread, whatever the cause: a failure in ``on_start``, an
exception in a ``tell``, a normal stop. It does so *before* pending asks are failed
with ``ActorDeadError``, so whoever sees that error can already read the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

import pykka

from nua import log
from nua.actors.future import NotifyingFuture
from nua.actors.messages import Crash, Exited, Ping

ExitListener = Callable[[Exited], None]


class InjectedFaultError(RuntimeError):
    """Raised on purpose by an actor that received :class:`Crash`."""


class UnknownMessageError(TypeError):
    """An actor was sent a message it has no handler for."""


@dataclass(frozen=True)
class ChildContext:
    """What a supervisor gives each child it starts: its name, incarnation and exit listener."""

    child_id: str
    generation: int
    on_exit: ExitListener


def describe(error: BaseException | None) -> str | None:
    """A one-line account of an exception, as the tree's ``last_error`` shows it."""
    if error is None:
        return None
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class SupervisedActor(pykka.ThreadingActor):
    """A pykka actor that reports its exit and answers :class:`Ping` and :class:`Crash`.

    Subclasses handle their own messages in ``on_receive`` and pass anything else
    to ``super().on_receive``.
    """

    # An actor that ignores its stop must not keep the process alive: threads
    # cannot be killed, so the supervisor abandons it and the process still exits.
    use_daemon_thread: ClassVar[bool] = True

    def __init__(self, context: ChildContext) -> None:
        super().__init__()
        self.context = context
        self.log = log.get(f"nua.actors.{context.child_id}", actor=context.child_id)
        self._failure: BaseException | None = None

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return NotifyingFuture()

    def _actor_loop(self) -> None:
        # pykka's own loop is setup, running, teardown; the exit report goes
        # between the last two so that it precedes the ActorDeadErrors.
        try:
            self._actor_loop_setup()
            self._actor_loop_running()
        finally:
            self._report_exit()
            self._actor_loop_teardown()

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Replaces pykka's handler to log through structlog with the actor's id
        # and to remember the cause for the exit report.
        self._failure = exception_value
        self.log.error("actor_failed", error=describe(exception_value), exc_info=(exception_type, exception_value, tb))
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    def _report_exit(self) -> None:
        if self._failure is None and sys.exc_info()[1] is not None:
            self._failure = sys.exc_info()[1]  # a BaseException escaped pykka's loop
        exited = Exited(self.context.child_id, self.context.generation, describe(self._failure))
        try:
            self.context.on_exit(exited)
        except Exception:  # a broken listener must not hide the exit
            self.log.exception("exit_listener_failed")

    def on_receive(self, message: Any) -> Any:
        match message:
            case Ping():
                return True
            case Crash(reason):
                raise InjectedFaultError(reason)
            case _:
                msg = f"{type(self).__name__} does not handle {type(message).__name__}"
                raise UnknownMessageError(msg)
