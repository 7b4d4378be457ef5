"""A thread that tells an actor a message when it is time, so that the actor never sleeps.

It is time every ``interval_s`` seconds (``None``: never by time alone), and at
once when a :class:`~nua.actors.file_watch.FileWatch` it was given reports a
change. The actor may change the interval as its needs change
(:meth:`Ticker.set_interval`: a look four times a second during a database
outage, none while the database is fine), so that an idle daemon's threads
sleep instead of waking to find nothing to do. While the watch is incomplete (a
watched directory was removed), the ticker looks every ``fallback_s`` as well.

The thread only keeps time: whatever the message asks for happens in the actor's
own thread, so a fault there is the actor's and gets supervised. It ends when
stopped, or when the actor is gone.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from typing import Any

import pykka

from nua.actors.file_watch import FileWatch


class Ticker:
    """Tells ``message`` to ``ref`` every ``interval_s`` seconds and at each change ``watch`` sees, until :meth:`stop`.

    The ticker owns ``watch`` (it closes it when it ends).
    """

    def __init__(
        self,
        ref: pykka.ActorRef[Any],
        message: Any,
        interval_s: float | None,
        name: str,
        *,
        watch: FileWatch | None = None,
        fallback_s: float | None = None,
    ) -> None:
        self._ref = ref
        self._message = message
        self._interval_s = interval_s
        self._watch = watch
        self._fallback_s = fallback_s
        self._stopping = threading.Event()
        self._done = threading.Event()  # the thread has stopped ticking (it may still be closing the watch)
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pipe_lock = threading.Lock()
        self._thread = threading.Thread(target=self._tick, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking; waits until the thread has stopped, unless called from it."""
        self._stopping.set()
        self._wake()
        if self._thread is threading.current_thread():
            return
        if self._thread.ident is None:  # never started: the watch is ours to close
            if self._watch is not None:
                self._watch.close()
        else:
            self._done.wait()
        with self._pipe_lock:  # closed only once the thread no longer reads it
            if self._wake_write >= 0:
                os.close(self._wake_read)
                os.close(self._wake_write)
                self._wake_write = -1

    def set_interval(self, interval_s: float | None) -> None:
        """Tick every ``interval_s`` from now on (``None``: only on a watched change)."""
        if interval_s != self._interval_s:
            self._interval_s = interval_s
            self._wake()

    def _wake(self) -> None:
        with self._pipe_lock, contextlib.suppress(BlockingIOError):  # full: a wake-up is pending already
            if self._wake_write >= 0:
                os.write(self._wake_write, b"!")

    def _is_due(self, ready: list[int]) -> bool:
        """Whether the descriptors ``ready`` (none: the time is up) call for a tick.

        A watched file changed, or the interval passed; not the wake-up pipe alone,
        nor events about the directory's other files.
        """
        if self._watch is not None and self._watch.fileno() in ready:
            return self._watch.changed()
        if self._watch is not None and not ready:
            self._watch.changed()  # a removed directory may be back: watch it again
        return not ready

    def _period(self) -> float | None:
        periods = [self._interval_s]
        if self._watch is not None and not self._watch.complete:
            periods.append(self._fallback_s)
        known = [period for period in periods if period is not None]
        return min(known) if known else None

    def _tick(self) -> None:
        # poll, not select: a descriptor numbered past 1024 (a restarted actor in a
        # daemon with many connections open) is beyond what select can wait on.
        poller = select.poll()
        poller.register(self._wake_read, select.POLLIN)
        if self._watch is not None:
            poller.register(self._watch.fileno(), select.POLLIN)
        last = time.monotonic()  # the last tick, or the last change of interval
        try:
            while not self._stopping.is_set():
                period = self._period()
                timeout = None if period is None else max(0.0, last + period - time.monotonic()) * 1000
                ready = [fd for fd, _ in poller.poll(timeout)]
                if self._stopping.is_set():
                    return
                if self._wake_read in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_read, 4096)
                if not self._is_due(ready):
                    if ready == [self._wake_read]:
                        last = time.monotonic()  # only the wake-up: a new interval, counted from now
                    continue
                last = time.monotonic()
                try:
                    self._ref.tell(self._message)
                except pykka.ActorDeadError:
                    return
        finally:
            self._done.set()
            # After done: closing an inotify descriptor waits for a grace period of the
            # kernel's (up to 25 ms measured under load), which a stop need not wait for.
            if self._watch is not None:
                self._watch.close()


__all__ = ["Ticker"]
