"""Calls (replies carried in the message) and exit reports through pykka's public hooks.

These are also nua's canaries on pykka: they fail on a pykka release that stops
running ``on_start``/``on_failure``/``on_stop`` before it fails the asks left in a
dead actor's mailbox, which is what lets a supervisor know why an actor ended
before anyone sees ``ActorDeadError``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from nua.actors.call import call
from nua.actors.messages import Crash, Exited
from nua.actors.supervised import ChildContext, InjectedFaultError, SupervisedActor

WAIT_S = 10.0


@dataclass(frozen=True)
class Echo:
    value: Any


@dataclass(frozen=True)
class Block:
    """Holds the actor until ``release`` is set, after telling ``entered``."""

    entered: threading.Event
    release: threading.Event


class Echoer(SupervisedActor):
    def __init__(self, context: ChildContext, *, fail_setup: bool = False) -> None:
        super().__init__(context)
        self.fail_setup = fail_setup
        self.handled: list[Any] = []

    def setup(self) -> None:
        if self.fail_setup:
            msg = "no resources"
            raise OSError(msg)

    def on_receive(self, message: Any) -> Any:
        match message:
            case Echo(value):
                self.handled.append(value)
                return value
            case Block(entered, release):
                entered.set()
                release.wait(WAIT_S)
                return None
            case _:
                return super().on_receive(message)


class Exits:
    """Records exit reports, and what had already failed when each one came."""

    def __init__(self) -> None:
        self.reports: list[Exited] = []
        self.came = threading.Event()
        self.watched: list[Future[Any]] = []
        self.failed_before_report: list[bool] = []

    def __call__(self, exited: Exited) -> None:
        self.failed_before_report = [future.done() for future in self.watched]
        self.reports.append(exited)
        self.came.set()


def start(exits: Exits, **kwargs: Any) -> pykka.ActorRef[Any]:
    return Echoer.start(ChildContext("echo", 1, exits), **kwargs)


def blocked(ref: pykka.ActorRef[Any]) -> Callable[[], None]:
    """Hold ``ref`` in a message; returns the release."""
    entered, release = threading.Event(), threading.Event()
    ref.tell(Block(entered, release))
    assert entered.wait(WAIT_S)
    return release.set


def test_a_call_is_answered_through_its_reply_and_an_error_is_the_callers() -> None:
    exits = Exits()
    ref = start(exits)
    try:
        assert call(ref, Echo(42)).result(WAIT_S) == 42
        with pytest.raises(InjectedFaultError, match="asked"):
            call(ref, Crash("asked")).result(WAIT_S)
        assert ref.is_alive()  # a call's error is its caller's, as with ask
    finally:
        ref.stop()


def test_a_reply_notifies_its_callbacks_in_the_actors_thread() -> None:
    exits = Exits()
    ref = start(exits)
    seen: list[tuple[Any, threading.Thread]] = []
    done = threading.Event()

    def notified(future: Future[Any]) -> None:
        seen.append((future.result(), threading.current_thread()))
        done.set()

    try:
        release = blocked(ref)
        reply = call(ref, Echo("x"))
        reply.add_done_callback(notified)  # registered before the answer exists
        release()
        assert done.wait(WAIT_S)
        assert seen[0][0] == "x"
        assert seen[0][1] is not threading.current_thread()
    finally:
        ref.stop()


def test_a_call_withdrawn_before_it_is_taken_is_never_handled() -> None:
    exits = Exits()
    ref = start(exits)
    try:
        release = blocked(ref)
        withdrawn = call(ref, Echo("late"))
        assert withdrawn.cancel()  # the caller gives up while the call waits in the mailbox
        kept = call(ref, Echo("kept"))
        release()
        assert kept.result(WAIT_S) == "kept"
        assert ref.proxy().handled.get(timeout=WAIT_S) == ["kept"]
    finally:
        ref.stop()


def test_calls_behind_a_crash_fail_with_actor_dead_after_the_exit_report() -> None:
    exits = Exits()
    ref = start(exits)
    release = blocked(ref)
    ref.tell(Crash("told"))
    queued = [call(ref, Echo(index)) for index in range(3)]
    exits.watched = queued
    release()

    for future in queued:
        with pytest.raises(pykka.ActorDeadError, match="stopped before handling the call"):
            future.result(WAIT_S)
    assert exits.reports == [Exited("echo", 1, "InjectedFaultError: told")]
    assert exits.failed_before_report == [False, False, False]  # the reason was known first


def test_an_ask_queued_behind_a_failing_setup_fails_after_the_exit_report() -> None:
    exits = Exits()
    ref = start(exits, fail_setup=True)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask(Echo(1), timeout=WAIT_S)
    # The ask failed at pykka's teardown, which comes after on_start reported.
    assert exits.reports == [Exited("echo", 1, "OSError: no resources")]


def test_a_stop_reports_a_normal_exit_and_a_call_to_a_stopped_actor_raises() -> None:
    exits = Exits()
    ref = start(exits)
    ref.stop(timeout=WAIT_S)
    assert exits.reports == [Exited("echo", 1, None)]
    with pytest.raises(pykka.ActorDeadError):
        call(ref, Echo(1))
