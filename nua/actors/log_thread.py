"""A thread that writes an actor's frequent log lines, so that rendering them is not in the actor's serial section.

The DB writer logs one line per audited call once its batch has committed. Rendered
in the writer's thread (structlog's processors, the stdlib record, JSON, a write),
a line costs about as much as the call's own share of the batch, and it delays
the next batch: measured with bench/audit.py, 8 clients writing settings lost
about a third of their throughput. Handed to this thread, a line costs the
writer a queue append; the rendering overlaps with the writer's waits on the
disk. Lines keep their order; :meth:`stop` writes every line queued before it.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import structlog

# What :meth:`LogThread.stop` queues: the thread ends once every line before it is written.
_STOP = object()


class LogThread:
    """Writes lines through ``logger`` in a thread of its own, in the order they were given."""

    def __init__(self, logger: structlog.stdlib.BoundLogger, name: str) -> None:
        self._logger = logger
        self._lines: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name=name, daemon=True)
        self._thread.start()

    def info(self, event: str, **fields: Any) -> None:
        self._lines.put((self._logger.info, event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self._lines.put((self._logger.warning, event, fields))

    def stop(self) -> None:
        """Write every line queued so far, then end the thread (waits for it unless called from it)."""
        self._lines.put(_STOP)
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _write(self) -> None:
        while True:
            line = self._lines.get()
            if line is _STOP:
                return
            write, event, fields = line
            try:
                write(event, **fields)
            except Exception:  # noqa: BLE001, S112 - logging reports its own failures; one line must not end the others
                continue


__all__ = ["LogThread"]
