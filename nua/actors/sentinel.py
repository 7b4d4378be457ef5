"""The sentinel: shuts the daemon down when its pid file or exit flag says so.

As in nua's original design, an operator (or a second, confused daemon) can end a
running daemon by removing its pid file, rewriting it with another pid, or creating
the exit flag file. The sentinel looks at those files when inotify says their
directory changed (:class:`~nua.actors.file_watch.FileWatch`: at once, and an
idle daemon never wakes for it), every :data:`IDLE_INTERVAL_S` for what inotify
cannot see (a directory above renamed, a network file system), and every
:data:`INTERVAL_S` while it has a reason to look again soon (a pid file caught
half-written, a look that failed, no inotify at all); the first time one of them
says so, it asks for a graceful shutdown through the listener it was given (it
holds no reference to the daemon). An exit flag owned by another account than
root or the daemon's is ignored (logged once). A look that fails (out of file
descriptors, say) is not a change: it is logged and retried. The runtime files a
crashed daemon may have left behind (an exit flag among them) are the daemon's to
remove, before it says it is ready (:mod:`nua.daemon.runner`): an exit flag the
sentinel finds is a request, made after the daemon was ready, even if the sentinel
had not started yet.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nua import pidfile, pidlock
from nua.actors.file_watch import CONTENT, watch_or_none
from nua.actors.supervised import ChildContext, SupervisedActor
from nua.actors.ticker import Ticker
from nua.settings import Settings

ShutdownListener = Callable[[str], None]

# Four looks a second while a look is due again soon, or without inotify: a
# shutdown request is then noticed well within a second.
INTERVAL_S = 0.25
# With inotify, the look behind it, for what it cannot see.
IDLE_INTERVAL_S = 5.0


@dataclass(frozen=True)
class Check:
    """Look at the pid file and the exit flag now."""


class Sentinel(SupervisedActor):
    """Watches the pid file and the exit flag; requests a shutdown when they say so."""

    def __init__(
        self,
        context: ChildContext,
        settings: Settings,
        request_shutdown: ShutdownListener,
    ) -> None:
        super().__init__(context)
        self.pid_file = Path(settings.server.pid_file)
        self.exit_flag = Path(settings.server.exit_flag)
        self.pid = os.getpid()
        self._request_shutdown = request_shutdown
        self._requested = False
        self._unreadable_since: float | None = None  # when a look first found no pid in the file
        self._failing: set[tuple[Path, int | None]] = set()  # (file, errno) already logged
        self._ignored_owner: int | None = None  # the owner of an exit flag ignored (and logged) last
        self._ticker: Ticker | None = None
        self._idle_interval_s = INTERVAL_S

    def setup(self) -> None:
        # The ticker only keeps time; the looking happens in the actor's own thread,
        # so that a fault there is the actor's and gets supervised.
        watch = watch_or_none([self.pid_file, self.exit_flag], CONTENT, self.log, INTERVAL_S)
        self._idle_interval_s = IDLE_INTERVAL_S if watch is not None else INTERVAL_S
        name = f"{self.context.child_id}-ticker"
        self._ticker = Ticker(self.actor_ref, Check(), INTERVAL_S, name, watch=watch, fallback_s=INTERVAL_S)
        self._check()  # after the watch is set: a change from now on is seen
        self._ticker.start()

    def cleanup(self, error: BaseException | None) -> None:
        self._stop_ticker()
        if error is None:
            self.log.info("sentinel_stopped")

    def on_receive(self, message: Any) -> Any:
        match message:
            case Check():
                self._check()
                return None
            case _:
                return super().on_receive(message)

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

    def _check(self) -> None:
        if self._requested:
            return
        reason = self._reason_to_stop()
        if self._ticker is not None:
            # Soon again after a pid file caught half-written or a look that failed.
            soon = self._unreadable_since is not None or bool(self._failing)
            self._ticker.set_interval(INTERVAL_S if soon else self._idle_interval_s)
        if reason is None:
            return
        self._requested = True
        self.log.warning("shutdown_requested", reason=reason)
        self._request_shutdown(reason)

    def _reason_to_stop(self) -> str | None:
        # Only positive evidence stops the daemon. A look that fails for any other
        # reason than "no such file" (out of descriptors, permissions, I/O) says
        # nothing about the files: it is logged and the next tick looks again.
        if self._flag_present():
            return f"exit flag {self.exit_flag} appeared"
        return self._pid_file_changed()

    def _pid_file_changed(self) -> str | None:
        try:
            data = pidlock.read_head(self.pid_file)
        except FileNotFoundError:
            return f"pid file {self.pid_file} was removed"
        except OSError as exc:
            self._look_failed(self.pid_file, exc)
            return None
        self._look_succeeded(self.pid_file)
        written = pidfile.parse_pid(data)
        if written is None:
            # Caught mid-write by someone else, or garbage: only a file still
            # unreadable INTERVAL_S after the first such look is a reason. (Two
            # looks are not enough: inotify calls for one the moment the file is
            # created, and another may follow before its writer has written.)
            now = time.monotonic()
            if self._unreadable_since is None:
                self._unreadable_since = now
            if now - self._unreadable_since < INTERVAL_S:
                return None
            return f"pid file {self.pid_file} was rewritten with something that is not a pid"
        self._unreadable_since = None
        if written != self.pid:
            return f"pid file {self.pid_file} was rewritten with pid {written}"
        return None

    def _flag_present(self) -> bool:
        """Whether the exit flag exists, put there by root or by us; ``False`` when that cannot be told (logged).

        Any entry by that name is the flag, even a dangling link, but only if
        its owner could stop the daemon anyway: in a shared sticky directory
        (``/tmp``, which :func:`~nua.settings.private_dir` accepts) any local
        account can create the name, and must not stop the daemon with it.
        """
        try:
            owner = self.exit_flag.lstat().st_uid
        except FileNotFoundError:
            self._look_succeeded(self.exit_flag)
            self._ignored_owner = None
            return False
        except OSError as exc:
            self._look_failed(self.exit_flag, exc)
            return False
        if owner not in {0, os.geteuid()}:
            self._foreign_flag(owner)
            return False
        return True

    def _foreign_flag(self, owner: int) -> None:
        # Once while the file stays, not at every look.
        if self._ignored_owner == owner:
            return
        self._ignored_owner = owner
        self.log.warning(
            "exit_flag_ignored",
            path=str(self.exit_flag),
            owner_uid=owner,
            reason="the exit flag belongs to another account than root or the daemon's",
        )

    def _look_failed(self, path: Path, exc: OSError) -> None:
        # Once per file and kind of error, not at every look.
        kind = (path, exc.errno)
        if kind in self._failing:
            return
        self._failing.add(kind)
        self.log.error(
            "watched_file_unreadable",
            path=str(path),
            error=exc.strerror or str(exc),
            errno=errno.errorcode.get(exc.errno or 0, exc.errno),
            action="looking again at the next tick",
        )

    def _look_succeeded(self, path: Path) -> None:
        failed = {kind for kind in self._failing if kind[0] == path}
        if failed:
            self._failing -= failed
            self.log.info("watched_file_readable", path=str(path))
