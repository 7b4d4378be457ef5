"""Calls whose reply travels in the message, as Erlang's ``From``.

pykka's ``ask`` hands back a future that pykka itself resolves with whatever
``on_receive`` returns, and that offers no done-callback. nua needs two things it
cannot give: the RPC gateway must reply to a client the moment the answer exists,
without a thread blocked on each call, and the DB writer must answer a command
only after the commit of the batch that holds it, which comes later than its
``on_receive``. So a request that wants an answer is told as a :class:`Call`: the
message and a :class:`concurrent.futures.Future` for the reply. Whoever handles
the call resolves that future when the answer exists; the caller may add
done-callbacks to it. pykka's own envelope is never touched.

A reply is never lost. :func:`call` records each reply as outstanding under the
callee's actor URN (a monitor, in Erlang's terms) until the callee takes the call
from its mailbox; when a nua actor ends, it fails whatever is still outstanding
for it with :class:`pykka.ActorDeadError`, as pykka fails the asks left in a dead
actor's mailbox. A caller that cancels a reply before the callee takes the call
(the gateway does, on a call's timeout) withdraws it: the callee skips it.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

import pykka


@dataclass(frozen=True, slots=True)
class Call:
    """``message``, to be answered through ``reply`` by the actor that receives it."""

    message: Any
    reply: Future[Any]


class _Outstanding:
    """The replies of calls told to each actor and not yet taken from its mailbox."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_actor: dict[str, set[Future[Any]]] = {}

    def add(self, urn: str, reply: Future[Any]) -> None:
        with self._lock:
            self._by_actor.setdefault(urn, set()).add(reply)

    def discard(self, urn: str, reply: Future[Any]) -> None:
        with self._lock:
            replies = self._by_actor.get(urn)
            if replies is not None:
                replies.discard(reply)
                if not replies:
                    del self._by_actor[urn]

    def take_all(self, urn: str) -> set[Future[Any]]:
        with self._lock:
            return self._by_actor.pop(urn, set())


_outstanding = _Outstanding()


def call(ref: pykka.ActorRef[Any], message: Any) -> Future[Any]:
    """Tell ``ref`` a :class:`Call` of ``message``; the returned future receives the answer.

    Raises :class:`pykka.ActorDeadError` when the actor has stopped already, as
    ``ask`` does. ``ref`` must be a nua actor (:class:`~nua.actors.supervised.SupervisedActor`).
    """
    reply: Future[Any] = Future()
    urn = ref.actor_urn
    _outstanding.add(urn, reply)
    try:
        ref.tell(Call(message, reply))
    except pykka.ActorDeadError:
        _outstanding.discard(urn, reply)
        raise
    return reply


def accept(urn: str, received: Call) -> bool:
    """The callee takes ``received`` from its mailbox: ``False`` when its caller has withdrawn it."""
    _outstanding.discard(urn, received.reply)
    return received.reply.set_running_or_notify_cancel()


def abandon(urn: str, reason: str) -> None:
    """The actor ``urn`` has ended: fail every call told to it that it never took."""
    for reply in _outstanding.take_all(urn):
        # A reply resolved or withdrawn meanwhile has no one left to tell.
        with contextlib.suppress(InvalidStateError):
            reply.set_exception(pykka.ActorDeadError(reason))
