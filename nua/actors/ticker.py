"""A thread that tells an actor a message at a fixed interval, so that the actor never sleeps.

The thread only keeps time: whatever the message asks for happens in the actor's
own thread, so a fault there is the actor's and gets supervised. It ends when
stopped, or when the actor is gone.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka


class Ticker:
    """Tells ``message`` to ``ref`` every ``interval_s`` seconds until :meth:`stop`."""

    def __init__(self, ref: pykka.ActorRef[Any], message: Any, interval_s: float, name: str) -> None:
        self._ref = ref
        self._message = message
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._tick, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking; waits for the thread unless called from it."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _tick(self) -> None:
        while not self._stopping.wait(self._interval_s):
            try:
                self._ref.tell(self._message)
            except pykka.ActorDeadError:
                return


__all__ = ["Ticker"]
