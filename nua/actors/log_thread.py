"""A thread that writes an actor's frequent log lines, so that rendering them is not in the actor's serial section.

The gateway logs one line per state-changing call once it is answered, the DB
writer one per denied call. Rendered in the actor's thread (structlog's
processors, the stdlib record, JSON, a write), a line costs about as much as the
call's own share of the actor's work, and it delays the next one: measured with
bench/audit.py, 8 clients writing settings lost about a third of their
throughput. Handed to this thread, a line costs the actor a queue append. The
thread takes every line waiting at once and writes them together
(:func:`nua.log.write_lines`: no stdlib record per line, one write for them
all), so that under load a line costs about a third of what logging it alone
does. Lines keep their order; :meth:`stop` writes every line queued before it.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import structlog

from nua import log

# The most lines written together: a bound on what one write holds, whatever the backlog.
MOST_AT_ONCE = 256


class LogThread:
    """Writes lines through ``logger`` in a thread of its own, in the order they were given."""

    def __init__(self, logger: structlog.stdlib.BoundLogger, name: str) -> None:
        self._logger = logger
        self._lines: queue.SimpleQueue[log.Line | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name=name, daemon=True)
        self._thread.start()

    def info(self, event: str, **fields: Any) -> None:
        # The level is looked at here, not in the thread: a line that will not be written is not queued.
        if self._logger.isEnabledFor(logging.INFO):
            self._lines.put(("info", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        if self._logger.isEnabledFor(logging.WARNING):
            self._lines.put(("warning", event, fields))

    def stop(self) -> None:
        """Write every line queued so far, then end the thread (waits for it unless called from it)."""
        self._lines.put(None)  # the thread ends once every line before it is written
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _write(self) -> None:
        stopping = False
        while not stopping:
            line = self._lines.get()
            lines: list[log.Line] = []
            while line is not None:
                lines.append(line)
                if len(lines) == MOST_AT_ONCE:
                    break
                try:
                    line = self._lines.get_nowait()
                except queue.Empty:
                    break
            else:
                stopping = True
            try:
                if lines:
                    log.write_lines(self._logger, lines)
            except Exception:  # noqa: BLE001, S110 - logging reports its own failures; one write must not end the thread
                pass


__all__ = ["LogThread"]
