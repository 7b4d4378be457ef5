"""A thread that writes an actor's frequent log lines, so that rendering them is not in the actor's serial section.

The DB writer logs one line per audited call once its batch has committed. Rendered
in the writer's thread (structlog's processors, the stdlib record, JSON, a write),
a line costs about as much as the call's own share of the batch, and it delays
the next batch: measured with bench/audit.py, 8 clients writing settings lost
about a third of their throughput. Handed to this thread, a batch's lines cost
the writer one queue append; they are rendered and written together
(:func:`nua.log.write_lines`: one write for them all), overlapping with the
writer's waits on the disk. Lines keep their order; :meth:`stop` writes every
line queued before it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

import structlog

from nua import log


class LogThread:
    """Writes lines through ``logger`` in a thread of its own, in the order they were given."""

    def __init__(self, logger: structlog.stdlib.BoundLogger, name: str) -> None:
        self._logger = logger
        self._lines: queue.SimpleQueue[Sequence[log.Line] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name=name, daemon=True)
        self._thread.start()

    def write(self, lines: Sequence[log.Line]) -> None:
        """Queue ``lines`` (level, event, fields), to be written together, after the lines queued before them."""
        if lines:
            self._lines.put(lines)

    def stop(self) -> None:
        """Write every line queued so far, then end the thread (waits for it unless called from it)."""
        self._lines.put(None)  # the thread ends once every line before it is written
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _write(self) -> None:
        while True:
            lines = self._lines.get()
            if lines is None:
                return
            try:
                log.write_lines(self._logger, lines)
            except Exception:  # noqa: BLE001, S112 - logging reports its own failures; one batch must not end the others
                continue


__all__ = ["LogThread"]
