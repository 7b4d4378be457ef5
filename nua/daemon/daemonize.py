"""Detaching from the terminal the Unix way, with readiness reported through a pipe.

``fork``, ``setsid``, ``fork`` again (so the daemon is no session leader and can
never reacquire a terminal), ``chdir("/")`` (so it pins no mounted directory),
umask 027, standard streams to ``/dev/null``. The original process does not guess
when the daemon is up: it blocks reading a pipe until the daemon writes one line
(ready, already running, or failed with a reason) or the pipe closes because the
daemon died.
"""

from __future__ import annotations

import contextlib
import enum
import os
import select
import time
from dataclasses import dataclass

from nua.daemon import sigmask

UMASK = 0o027


class Outcome(enum.StrEnum):
    READY = "ready"
    RUNNING = "running"  # another daemon already holds the pid lock
    FAILED = "failed"


@dataclass(frozen=True)
class Report:
    """What the original process learned from the daemon."""

    outcome: Outcome
    pid: int | None = None
    reason: str = ""


class Readiness:
    """The daemon's end of the readiness pipe: report once, then it is closed."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def ready(self) -> None:
        self._send(f"{Outcome.READY} {os.getpid()}")

    def already_running(self, pid: int | None) -> None:
        self._send(f"{Outcome.RUNNING} {pid or 0}")

    def failed(self, reason: str) -> None:
        self._send(f"{Outcome.FAILED} {os.getpid()} {' '.join(reason.split())}")

    def _send(self, line: str) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # The reader may be gone (killed while waiting): the daemon carries on.
        with contextlib.suppress(OSError):
            os.write(fd, (line + "\n").encode("utf-8", "replace"))
        os.close(fd)


def _parse(data: bytes) -> Report:
    line = data.decode("utf-8", "replace").strip()
    if not line:
        return Report(Outcome.FAILED, reason="the daemon exited before it was ready")
    kind, _, rest = line.partition(" ")
    pid_text, _, reason = rest.partition(" ")
    pid = int(pid_text) if pid_text.isdigit() and int(pid_text) > 0 else None
    try:
        return Report(Outcome(kind), pid, reason)
    except ValueError:
        return Report(Outcome.FAILED, pid, f"unexpected readiness report {line!r}")


def _wait_report(fd: int, timeout_s: float) -> Report:
    data = b""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Report(Outcome.FAILED, reason=f"the daemon did not report readiness within {timeout_s:.0f} s")
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:  # every writer closed: reported, or died
            return _parse(data)
        data += chunk


def _redirect_std_streams() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    if null > 2:
        os.close(null)


def daemonize(timeout_s: float) -> Readiness | Report:
    """Become a daemon.

    In the daemon this returns a :class:`Readiness` to report through. In the
    original process it returns the daemon's :class:`Report` once the daemon has
    reported (or died, or ``timeout_s`` passed); the caller then exits.
    """
    read_end, write_end = os.pipe()
    # The daemon handles its signals only once it has installed its handlers:
    # until then they wait (see ``sigmask``). The original process is no daemon.
    previous = sigmask.block()
    try:
        first = os.fork()
    except BaseException:
        sigmask.restore(previous)
        raise
    if first > 0:
        sigmask.restore(previous)
        os.close(write_end)
        try:
            os.waitpid(first, 0)  # the intermediate process exits at once
            return _wait_report(read_end, timeout_s)
        finally:
            os.close(read_end)

    # The intermediate process: a new session without a terminal, then fork
    # again so that the daemon is not a session leader.
    os.close(read_end)
    try:
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
    except OSError:
        os._exit(1)  # the original process reads EOF and reports a failure
    os.chdir("/")
    os.umask(UMASK)
    _redirect_std_streams()
    return Readiness(write_end)
