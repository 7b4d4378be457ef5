"""The runs in progress of one daemon's cron jobs, and how a command job's process is run and watched.

What here outlives a cron actor: :class:`LiveRuns` (held by the daemon's
:class:`~nua.actors.cron.CronHost`) knows every run in progress, so that an actor
that replaces a crashed one records their ends and counts them against
``max_running``. A command run (:class:`CommandRun`) starts its process on the
daemon's :class:`~nua.actors.process_loop.ProcessLoop` under the services' rules
(:func:`nua.actors.os_process.launch`), with the ``NUA_SERVICE`` mark
:func:`job_mark`; its output goes to ``{log_dir}/jobs/NAME.log`` and its last bytes
to the run's record (:class:`RunOutput`).

``claimed_by`` names a daemon (:func:`daemon_instance`: host, pid, the process's
start time, a token), so that the next daemon on the host can tell a run left
``running`` by one that is gone (:func:`instance_alive`) and end what it left
running (:func:`end_left_running`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from nua.actors import os_process
from nua.actors.process_loop import ProcessLoop
from nua.actors.service_log import ServiceLog
from nua.actors.timers import Cancel, Timers
from nua.job_settings import CommandAction
from nua.model.cron import excerpt

# A command past its timeout_s gets SIGTERM, then SIGKILL this much later.
KILL_AFTER_S = 5.0
# After its process exits, a command's output is awaited this long (a descendant may hold the pipe).
OUTPUT_WAIT_S = 1.0
# The output of a command kept with its run.
OUTPUT_TAIL_BYTES = 4096


def daemon_instance() -> str:
    """This daemon's name in ``claimed_by``: host, pid, the process's start (clock ticks since boot), boot, token."""
    pid = os.getpid()
    started = os_process.start_ticks(pid) or 0
    return f"{socket.gethostname()[:100]}/{pid}/{started}/{os_process.boot_id()}/{time.time_ns() % 10**9}"


def instance_alive(instance: str) -> bool | None:
    """Whether the daemon ``instance`` still runs: ``None`` when it ran on another host (not ours to tell).

    A name of four parts was made by an earlier nua (host, pid, psutil's start
    time in seconds, token), which may still run beside this one on a shared
    database: it is asked about the way that nua asked.
    """
    parts = instance.split("/")
    if len(parts) not in (4, 5) or parts[0] != socket.gethostname()[:100]:
        return None
    try:
        pid = int(parts[1])
        if len(parts) == 4:
            return os_process.Identity(pid, float(parts[2])).process() is not None
        started = int(parts[2])
    except ValueError:
        return False
    # Another boot: that daemon is gone. Not a zombie either: a daemon killed with -9 may stay one.
    return parts[3] == os_process.boot_id() and started != 0 and os_process.start_ticks(pid) == started


def job_mark(job: str, instance: str) -> str:
    """The ``NUA_SERVICE`` mark of a job's processes: how a later daemon finds those a killed one left."""
    return f"cron:{job}@{instance}"


@dataclass
class LiveRun:
    """A run in progress, held by the host so that a restarted actor still knows it."""

    job: str
    started: datetime
    identity: os_process.Identity | None = None
    timed_out: bool = False
    cancel: list[Cancel] = field(default_factory=list)


class LiveRuns:
    """The runs in progress of one daemon, by run id (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[int, LiveRun] = {}

    def add(self, run_id: int, run: LiveRun) -> None:
        with self._lock:
            self._runs[run_id] = run

    def get(self, run_id: int) -> LiveRun | None:
        with self._lock:
            return self._runs.get(run_id)

    def pop(self, run_id: int) -> LiveRun | None:
        with self._lock:
            return self._runs.pop(run_id, None)

    def snapshot(self) -> dict[int, LiveRun]:
        with self._lock:
            return dict(self._runs)


def end_left_running(job: str, instance: str, log: structlog.stdlib.BoundLogger) -> None:
    """End what a killed daemon's run of ``job`` left running (found by its mark), as services' leftovers are."""
    found = os_process.escaped(job_mark(job, instance), -1)
    if found:
        log.warning("cron_left_running", job=job, pids=[p.pid for p in found])
        os_process.terminate(found, signal.SIGTERM, KILL_AFTER_S)


@dataclass(frozen=True)
class RunEnded:
    """A run's action ended (told by the action's thread, to whichever actor is ``cron`` then)."""

    run_id: int
    job: str
    status: str
    detail: str
    exit_code: int | None = None


class RunOutput(ServiceLog):
    """A command run's output: appended to the job's log file, and its last bytes kept for the run's record."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        super().__init__(path, max_bytes, backups)
        self._tail = bytearray()
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        super().write(data)
        with self._lock:
            self._tail += data
            del self._tail[:-OUTPUT_TAIL_BYTES]

    def tail(self) -> str:
        with self._lock:
            return bytes(self._tail).decode("utf-8", "replace")


@dataclass
class CommandRun:
    """One run of a command job: its process started on the daemon's loop, its end told once with its output."""

    run_id: int
    job: str
    action: CommandAction
    live: LiveRun
    log_dir: Path
    mark: str

    def spawn(self, loop: ProcessLoop, timers: Timers, tell: Callable[[Any], None]) -> int | None:
        """Start the process; its pid, or ``None`` when it could not start (the end is told already).

        The end (:class:`RunEnded`) is told once the process has exited and its output
        pipe is closed, or :data:`OUTPUT_WAIT_S` after the exit if a descendant keeps the
        pipe open.
        """
        run_id, name, action = self.run_id, self.job, self.action
        output = RunOutput(self.log_dir / f"{name}.log", action.process.log_max_bytes, action.process.log_backups)
        ended = threading.Event()
        state: dict[str, Any] = {"code": None, "output": False}
        lock = threading.Lock()

        def finish() -> None:
            with lock:
                if ended.is_set():
                    return
                ended.set()
                code = state["code"]
            output.close()
            status = "ok" if code == 0 else "failed"
            tell(RunEnded(run_id, name, status, output.tail(), code))

        def exited(code: int) -> None:  # in the process loop's thread
            with lock:
                state["code"] = code
                done = state["output"]
            if done:
                finish()
            else:
                timers.call_later(OUTPUT_WAIT_S, finish)

        def output_ended() -> None:
            with lock:
                state["output"] = True
                done = state["code"] is not None
            if done:
                finish()

        mark = self.mark
        try:
            popen = loop.spawn(lambda: os_process.launch(action.process, mark), output, exited, output_ended)
        except (OSError, KeyError, ValueError) as exc:
            output.close()
            tell(RunEnded(run_id, name, "failed", f"cannot start: {exc}"))
            return None
        self.live.identity = os_process.Identity.of(popen.pid)
        return int(popen.pid)


def result_text(value: Any) -> str:
    """A call's result as its run records it: JSON, its end kept."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return excerpt(text)


def error_text(error: BaseException) -> str:
    """A call's error as its run records it: its kind and message."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return excerpt(f"{type(error).__name__}: {message}")


__all__ = [
    "KILL_AFTER_S",
    "CommandRun",
    "LiveRun",
    "LiveRuns",
    "RunEnded",
    "RunOutput",
    "daemon_instance",
    "end_left_running",
    "error_text",
    "instance_alive",
    "job_mark",
    "result_text",
]
