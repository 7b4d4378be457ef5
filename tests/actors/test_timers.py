"""The timer thread: callbacks run in deadline order; one that raises does not end the thread."""

from __future__ import annotations

import threading

from nua.actors.timers import TimerThread

WAIT_S = 10.0


def test_a_callback_that_raises_is_logged_and_the_next_ones_still_run() -> None:
    timers = TimerThread()
    timers.start()
    ran = threading.Event()

    def broken() -> None:
        msg = "a bug in one callback"
        raise RuntimeError(msg)

    try:
        timers.call_later(0.0, broken)
        timers.call_later(0.01, ran.set)
        assert ran.wait(WAIT_S), "the thread ended with the broken callback"
    finally:
        timers.stop()


def test_cancelling_a_timer_that_ran_or_one_still_due() -> None:
    timers = TimerThread()
    timers.start()
    first, second = threading.Event(), threading.Event()
    try:
        cancel_first = timers.call_later(0.0, first.set)
        assert first.wait(WAIT_S)
        cancel_first()  # it ran already: nothing to cancel, nothing kept
        cancel_second = timers.call_later(3600.0, second.set)
        cancel_second()
        done = threading.Event()
        timers.call_later(0.0, done.set)
        assert done.wait(WAIT_S)
        assert not second.is_set()
    finally:
        timers.stop()
