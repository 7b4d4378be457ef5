"""One thread that runs callbacks later: the service actors' start windows and backoffs.

A callback only tells an actor a message (it runs in the timer's thread), so the
timing is all this module does. Tests give the actors a :class:`ManualTimers`
instead and fire what is due themselves: no test sleeps through a backoff.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol

from nua import log


class Cancel(Protocol):
    def __call__(self) -> None: ...


class Timers(Protocol):
    """Runs ``callback`` once, ``delay_s`` seconds from now; the returned function cancels it."""

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Cancel: ...


class TimerThread:
    """:class:`Timers` on one thread sleeping on a condition until the next deadline."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._scheduled: set[int] = set()  # not yet run: cancelling another id must not be remembered
        self._ids = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="nua-timers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Cancel:
        with self._cond:
            timer_id = next(self._ids)
            heapq.heappush(self._heap, (self._clock() + delay_s, timer_id, callback))
            self._scheduled.add(timer_id)
            self._cond.notify()

        def cancel() -> None:
            with self._cond:
                # A timer that ran already (or is running) has nothing to cancel: remembering
                # its id would grow the set with every late cancel (a long-poll answered by its timer).
                if timer_id in self._scheduled:
                    self._cancelled.add(timer_id)

        return cancel

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._heap or self._heap[0][0] > self._clock()):
                    self._cond.wait(self._heap[0][0] - self._clock() if self._heap else None)
                if self._stopping:
                    return
                _, timer_id, callback = heapq.heappop(self._heap)
                self._scheduled.discard(timer_id)
                if timer_id in self._cancelled:
                    self._cancelled.discard(timer_id)
                    continue
            try:
                callback()
            except Exception:  # noqa: BLE001 - one broken callback must not end every later one (all services' timers)
                log.get("nua.actors.timers").exception("timer_callback_failed")


class ManualTimers:
    """:class:`Timers` for tests: nothing runs until :meth:`advance` moves the clock past its deadline."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[float, Callable[[], None]]] = {}
        self._ids = itertools.count()
        self.delays: list[float] = []

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Cancel:
        with self._lock:
            timer_id = next(self._ids)
            self._pending[timer_id] = (self.now + delay_s, callback)
            self.delays.append(delay_s)

        def cancel() -> None:
            with self._lock:
                self._pending.pop(timer_id, None)

        return cancel

    def advance(self, seconds: float) -> int:
        """Move the clock ``seconds`` on and run every callback now due; how many ran."""
        with self._lock:
            self.now += seconds
            due = sorted((when, i) for i, (when, _) in self._pending.items() if when <= self.now)
            callbacks = [self._pending.pop(i)[1] for _, i in due]
        for callback in callbacks:
            callback()
        return len(callbacks)

    def pending(self) -> list[float]:
        """The delays still to run, as deadlines minus now."""
        with self._lock:
            return sorted(when - self.now for when, _ in self._pending.values())
