"""The base class of every actor in nua's tree: it tells its supervisor when it ends.

pykka has no links or monitors. A supervised actor reports its own end to a
listener, from its own thread, whatever the cause: a failure in its setup, an
exception in a ``tell``, a normal stop. It does so through pykka's public hooks
(``on_start``, ``on_stop``, ``on_failure``), which pykka runs *before* it fails
the asks left in the mailbox with ``ActorDeadError``, so whoever sees that error
can already read the reason. Those hooks belong to this class; an actor does its
own work in :meth:`~SupervisedActor.setup` and :meth:`~SupervisedActor.cleanup`.

It also answers :class:`~nua.actors.call.Call` (a request whose reply travels in
the message), and fails the calls it never took when it ends.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, final

import pykka

from nua import log
from nua.actors import call
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
    """A pykka actor that reports its exit and answers :class:`Ping`, :class:`Crash` and calls.

    Subclasses set up in :meth:`setup`, release in :meth:`cleanup`, and handle their
    own messages in ``on_receive``, passing anything else to ``super().on_receive``.
    """

    # An actor that ignores its stop must not keep the process alive: threads
    # cannot be killed, so the supervisor abandons it and the process still exits.
    use_daemon_thread: ClassVar[bool] = True

    def __init__(self, context: ChildContext) -> None:
        super().__init__()
        self.context = context
        self.log = log.get(f"nua.actors.{context.child_id}", actor=context.child_id)

    def setup(self) -> None:
        """Acquire what the actor needs, in its own thread, before its first message.

        When it raises, the actor ends at once (``cleanup`` is not called: release
        here what was acquired) and its supervisor hears why.
        """

    def cleanup(self, error: BaseException | None) -> None:
        """Release what :meth:`setup` acquired; ``error`` is what killed the actor, ``None`` on a stop."""

    # -- pykka's hooks: the exit report -----------------------------------------------------

    @final
    def on_start(self) -> None:
        try:
            self.setup()
        except BaseException as exc:
            self.log.error("actor_failed", error=describe(exc), exc_info=exc)
            # Dead before the report, as pykka makes an actor dead before on_failure:
            # a call() told after this raises, and none can slip in after abandon().
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            self._ended(exc)
            raise

    @final
    def on_stop(self) -> None:
        # pykka also stops an actor this way when a BaseException (SystemExit,
        # KeyboardInterrupt) escaped a handler: that exception is the cause.
        self._clean_up_and_report(sys.exc_info()[1])

    @final
    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.log.error(
            "actor_failed", error=describe(exception_value), exc_info=(exception_type, exception_value, traceback)
        )
        self._clean_up_and_report(exception_value)

    def _clean_up_and_report(self, error: BaseException | None) -> None:
        try:
            self.cleanup(error)
        except Exception as exc:  # the exit must be reported all the same
            self.log.exception("actor_cleanup_failed")
            error = error or exc
        self._ended(error)

    def _ended(self, error: BaseException | None) -> None:
        """Tell the supervisor, then fail the calls never taken: the reason is known before anyone's error."""
        exited = Exited(self.context.child_id, self.context.generation, describe(error))
        try:
            self.context.on_exit(exited)
        except Exception:  # a broken listener must not hide the exit
            self.log.exception("exit_listener_failed")
        call.abandon(self.actor_urn, f"{self.context.child_id} stopped before handling the call")

    # -- messages ---------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        match message:
            case call.Call():
                self.answer(message)
                return None
            case Ping():
                return True
            case Crash(reason):
                raise InjectedFaultError(reason)
            case _:
                msg = f"{type(self).__name__} does not handle {type(message).__name__}"
                raise UnknownMessageError(msg)

    def answer(self, received: call.Call) -> None:
        """Handle the message of ``received`` as if asked, and resolve its reply with the outcome."""
        if not call.accept(self.actor_urn, received):
            return  # the caller withdrew it: the work must not happen unseen
        try:
            value = self.on_receive(received.message)
        except Exception as exc:  # noqa: BLE001 - the error is the caller's answer, as with ask
            received.reply.set_exception(exc)
        else:
            received.reply.set_result(value)
