"""A thread that writes an actor's frequent log lines, so that rendering them is not in the actor's serial section.

The transports (ZeroMQ, HTTP) log one line per state-changing call once answered, the DB
writer one per denied call. Rendered in the actor's thread (structlog's
processors, the stdlib record, JSON, a write), a line costs about as much as the
call's own share of the actor's work, and it delays the next one: measured with
bench/audit.py, 8 clients writing settings lost about a third of their
throughput. Here a line costs the actor a list append: the actor hands over
what it gave at the end of each of its steps (:meth:`LogThread.flush`: once per
batch of the writer, once per turn of a transport's I/O loop), one queue
message and at most one wakeup of the thread for them all. The thread takes
every line waiting and writes them together (:func:`nua.log.write_lines`: no
stdlib record per line, one write and one timestamp for them all): a line costs
about a third of what logging it alone does. Lines keep their order;
:meth:`stop` writes every line given before it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import structlog

from nua import log

# The most lines taken for one write (more when one hand-over holds more): a bound on a write, whatever the backlog.
MOST_AT_ONCE = 256


class LogThread:
    """Writes lines through ``logger`` in a thread of its own, in the order they were given.

    One thread gives the lines (:meth:`info`, :meth:`warning`) and hands them
    over (:meth:`flush`): the actor's own. :meth:`stop` hands over what is left.
    """

    def __init__(self, logger: structlog.stdlib.BoundLogger, name: str) -> None:
        self._logger = logger
        # The level check of the stdlib logger that ``logger`` wraps (the one write_lines writes through),
        # without structlog's wrapper around it: a line given costs one check (logging caches its answers).
        self._stdlib = logging.getLogger(logger.name)
        self._enabled = self._stdlib.isEnabledFor
        self._given: list[log.Line] = []  # since the last flush (the one list: flush empties it)
        # Keep ``line`` (level, event, fields) as it is, its level checked by the caller (writes_info): for a
        # caller that looked at the level once already (CallLog, when the call began) and has its fields in
        # a dict of its own: no second look, no copy, no call of a method. The fields must not change after.
        # Should the level rise meanwhile, the thread leaves the line out (nua.log.write_lines).
        self.add: Callable[[log.Line], None] = self._given.append
        self._lines: queue.SimpleQueue[list[log.Line] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name=name, daemon=True)
        self._thread.start()

    def info(self, event: str, **fields: Any) -> None:
        # The level is looked at here, not in the thread: a line that will not be written is not kept.
        if self._enabled(logging.INFO):
            self._given.append(("info", event, fields))

    def writes_info(self) -> bool:
        """Whether :meth:`info` keeps a line (the logger's level allows it)."""
        return self._enabled(logging.INFO)

    def warning(self, event: str, **fields: Any) -> None:
        if self._enabled(logging.WARNING):
            self._given.append(("warning", event, fields))

    def flush(self) -> None:
        """Hand the lines given since the last flush to the thread, which writes them soon."""
        if self._given:
            self._lines.put(self._given.copy())
            self._given.clear()

    def stop(self) -> None:
        """Write every line given so far, then end the thread (waits for it unless called from it)."""
        self.flush()
        self._lines.put(None)  # the thread ends once every line before it is written
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _write(self) -> None:
        stopping = False
        while not stopping:
            handed = self._lines.get()
            lines: list[log.Line] = []
            while handed is not None:
                lines.extend(handed)
                if len(lines) >= MOST_AT_ONCE:
                    break
                if self._lines.empty():  # rather than get_nowait's exception: this thread alone takes
                    break
                handed = self._lines.get()
            else:
                stopping = True
            try:
                if lines:
                    log.write_lines(self._logger, lines, stdlib_logger=self._stdlib)
            except Exception:  # noqa: BLE001, S110 - logging reports its own failures; one write must not end the thread
                pass


__all__ = ["LogThread"]
