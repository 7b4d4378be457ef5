"""The one thread that waits for every service process: its exit and its output.

It sleeps in ``epoll`` on three kinds of file descriptor: each service process's
pidfd (readable when it ends: it is then reaped at once with ``waitpid`` and its
owner told the exit status), each service's output pipe (read as it comes, 64 KiB
at a time, without ever blocking the writer, into its :class:`ServiceLog`), and a
wake-up pipe for requests from other threads (a new pipe to watch, a log reopen,
the stop). Nothing polls: a service that exits, writes or is started wakes it.

With ``reap_all`` (the daemon, a child subreaper) it also reaps every other child
of the process after each wake-up and every ``orphan_poll_s``: orphaned
descendants of services that ended. Their exit would otherwise leave a zombie,
since nothing else waits for them (PID 1 does not always, in containers or here).
Without it (tests, inside a process that has other children), it reaps only the
processes it started.

Popen never waits for a process itself: the loop is its only reaper and records the
exit status on it (``returncode``), so that subprocess's own clean-up never calls
``waitpid`` on a pid that may since have been given to another process.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from nua import log
from nua.actors.service_log import ServiceLog

READ_BYTES = 65536
ORPHAN_POLL_S = 5.0

ExitListener = Callable[[int], None]
# Where a pipe's bytes go, and what to call at its end.
_Output = tuple[ServiceLog, Callable[[], None] | None]


@dataclass
class _Owned:
    popen: subprocess.Popen[bytes]
    on_exit: ExitListener
    pidfd: int


class ProcessLoop:
    """Starts service processes and tells each owner of its exit; writes their output to their logs."""

    def __init__(self, *, reap_all: bool = False, orphan_poll_s: float = ORPHAN_POLL_S) -> None:
        self.reap_all = reap_all
        self.orphan_poll_s = orphan_poll_s
        self.log = log.get("nua.services.loop")
        self._lock = threading.Lock()
        self._owners: dict[int, _Owned] = {}
        self._requests: deque[Callable[[], None]] = deque()
        self._selector = selectors.EpollSelector()
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._logs: set[ServiceLog] = set()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="nua-process-loop", daemon=True)

    # -- for other threads ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the thread, close every log; the processes themselves are their owners' to stop."""
        if self._stopping:
            return
        self._stopping = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def spawn(
        self,
        launch: Callable[[], subprocess.Popen[bytes]],
        output: ServiceLog,
        on_exit: ExitListener,
        on_output_end: Callable[[], None] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a process with ``launch``; its output goes to ``output`` and its exit status to ``on_exit``.

        ``on_exit`` runs in the loop's thread, once, with :func:`os.waitstatus_to_exitcode`'s
        value (negative: killed by that signal): it must only hand the news on.
        ``on_output_end`` runs there too once the output pipe is closed by every
        process that held it (everything written is then in ``output``).
        Raises whatever ``launch`` raises (:class:`OSError`: the program cannot start).
        """
        with self._lock:  # no reaping between the start and the record of its owner
            popen = launch()
            pidfd = os.pidfd_open(popen.pid)
            self._owners[popen.pid] = _Owned(popen, on_exit, pidfd)
        stdout = popen.stdout
        pipe = -1
        if stdout is not None:
            pipe = os.dup(stdout.fileno())
            stdout.close()
            popen.stdout = None
            os.set_blocking(pipe, False)
        self._request(lambda: self._watch(popen.pid, pidfd, pipe, (output, on_output_end)))
        return popen

    def signal_group(self, pid: int, signum: int) -> bool:
        """Send ``signum`` to the group of ``pid``, a process started here; ``False`` once it has been reaped.

        Done under the lock that reaping takes: until the loop reaps it, the process
        (a zombie at worst) keeps its pid, and the kernel gives no new process a pid
        still in use as a group id, so the group signalled is the one started. No
        look at /proc is needed to be sure of that.
        """
        with self._lock:
            if pid not in self._owners:
                return False
            with contextlib.suppress(ProcessLookupError):  # the group has no live member left
                os.killpg(pid, signum)
            return True

    def owned(self) -> frozenset[int]:
        """The pids of the processes started here and not yet reaped."""
        with self._lock:
            return frozenset(self._owners)

    def open_log(self, log_file: ServiceLog) -> ServiceLog:
        """Adopt ``log_file``: the loop writes it, reopens it on :meth:`reopen_logs`, closes it at stop."""
        self._request(lambda: self._logs.add(log_file))
        return log_file

    def close_log(self, log_file: ServiceLog) -> None:
        """Close ``log_file`` once what is queued before has been handled."""

        def close() -> None:
            self._logs.discard(log_file)
            log_file.close()

        self._request(close)

    def reopen_logs(self) -> None:
        """Reopen every service's log file (after an external logrotate)."""

        def reopen() -> None:
            for log_file in self._logs:
                try:
                    log_file.reopen()
                except OSError as exc:
                    self.log.error("service_log_reopen_failed", path=str(log_file.path), error=exc.strerror)

        self._request(reopen)

    def _request(self, action: Callable[[], None]) -> None:
        self._requests.append(action)
        self._wake()

    def _wake(self) -> None:
        # OSError: the loop has stopped and closed its pipe (what was asked no longer matters).
        with contextlib.suppress(OSError):  # full: a wake-up is pending already
            os.write(self._wake_write, b"!")

    # -- the loop's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, _ in self._selector.select(self.orphan_poll_s if self.reap_all else None):
                    self._ready(key)
                while self._requests:
                    self._requests.popleft()()
                if self.reap_all:
                    self._reap_any()
        except Exception:
            self.log.exception("process_loop_failed")
            raise
        finally:
            self._close()

    def _ready(self, key: selectors.SelectorKey) -> None:
        match key.data:
            case None:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_read, 4096):
                        pass
            case int() as pid:
                self._reap(pid)
            case (ServiceLog(), _) as output:
                self._read(key.fd, output)

    def _watch(self, pid: int, pidfd: int, pipe: int, output: _Output) -> None:
        with self._lock:
            owned = self._owners.get(pid)
        if owned is not None and owned.pidfd == pidfd:
            self._selector.register(pidfd, selectors.EVENT_READ, pid)
        if pipe >= 0:
            self._selector.register(pipe, selectors.EVENT_READ, output)

    def _read(self, fd: int, destination: _Output) -> None:
        output, on_end = destination
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(fd)
            os.close(fd)
            if on_end is not None:
                on_end()
            return
        had_error = output.error
        output.write(data)
        if output.error is not None and output.error != had_error:
            self.log.error("service_log_write_failed", error=output.error)

    # Each wait and the removal of its owner happen under one hold of the lock: a
    # pid still among the owners is one not reaped yet (see signal_group).

    def _reap(self, pid: int) -> None:
        with self._lock:
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                reaped = 0  # reaped already by _reap_any, which told the owner
            owned = self._owners.pop(pid, None)
        if reaped == 0:
            if owned is not None:  # not ours to wait for after all: forget it
                self._forget(owned)
            return
        self._dispatch(pid, status, owned)

    def _reap_any(self) -> None:
        while True:
            with self._lock:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    return
                owned = self._owners.pop(pid, None) if pid != 0 else None
            if pid == 0:
                return
            self._dispatch(pid, status, owned)

    def _dispatch(self, pid: int, status: int, owned: _Owned | None) -> None:
        code = os.waitstatus_to_exitcode(status)
        if owned is None:
            self.log.info("orphan_reaped", pid=pid, exit_code=code)
            return
        self._forget(owned)
        owned.popen.returncode = code
        try:
            owned.on_exit(code)
        except Exception:  # an owner's listener must not end the loop of every service
            self.log.exception("exit_listener_failed", pid=pid)

    def _forget(self, owned: _Owned) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(owned.pidfd)
        os.close(owned.pidfd)

    def _close(self) -> None:
        for key in list(self._selector.get_map().values()):
            if key.fd != self._wake_read and not isinstance(key.data, int):
                os.close(key.fd)
        with self._lock:
            for owned in self._owners.values():
                os.close(owned.pidfd)
            self._owners.clear()
        self._selector.close()
        for log_file in self._logs:
            log_file.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
