"""The sentinel: shuts the daemon down when its pid file or exit flag says so.

As in nua's original design, an operator (or a second, confused daemon) can end a
running daemon by removing its pid file, rewriting it with another pid, or creating
the exit flag file. The sentinel looks at those files a few times a second and,
the first time one of them says so, asks for a graceful shutdown through the
listener it was given (it holds no reference to the daemon). At its first start it
also removes the runtime files a crashed daemon may have left behind.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka

from nua.actors._supervised import ChildContext, SupervisedActor
from nua.daemon import pidfile
from nua.daemon.endpoint import ipc_path
from nua.settings import Settings

ShutdownListener = Callable[[str], None]

# Four looks a second: a shutdown request is noticed well within a second, and an
# idle daemon spends a few microseconds a second on it.
INTERVAL_S = 0.25


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
        self.socket_file = ipc_path(settings.zmq.bind_endpoint)
        self.pid = os.getpid()
        self._request_shutdown = request_shutdown
        self._requested = False
        self._unreadable_looks = 0
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None

    def on_start(self) -> None:
        # Only the first incarnation cleans: after a restart the files belong to
        # this daemon, and an exit flag that appeared meanwhile is a request.
        if self.context.generation == 1:
            self._clean_stale_files()
        self._check()
        self._ticker = threading.Thread(target=self._tick, name=f"{self.context.child_id}-ticker", daemon=True)
        self._ticker.start()

    def on_stop(self) -> None:
        self._stop_ticker()
        self.log.info("sentinel_stopped")

    def on_failure(self, *_exc_info: object) -> None:
        self._stop_ticker()

    def on_receive(self, message: Any) -> Any:
        match message:
            case Check():
                self._check()
                return None
            case _:
                return super().on_receive(message)

    def _tick(self) -> None:
        # A separate thread only keeps time; the looking happens in the actor's
        # own thread, so that a fault there is the actor's and gets supervised.
        while not self._stopping.wait(INTERVAL_S):
            try:
                self.actor_ref.tell(Check())
            except pykka.ActorDeadError:
                return

    def _stop_ticker(self) -> None:
        self._stopping.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()

    def _clean_stale_files(self) -> None:
        stale = pidfile.stale_temp_files(self.pid_file)
        if self.exit_flag.exists():
            stale.append(self.exit_flag)
        # Safe: this daemon holds the pid lock, so no other daemon uses the socket.
        if self.socket_file is not None and self.socket_file.is_socket():
            stale.append(self.socket_file)
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self.log.info("stale_file_removed", path=str(path))

    def _check(self) -> None:
        if self._requested:
            return
        reason = self._reason_to_stop()
        if reason is None:
            return
        self._requested = True
        self.log.warning("shutdown_requested", reason=reason)
        self._request_shutdown(reason)

    def _reason_to_stop(self) -> str | None:
        if self.exit_flag.exists():
            return f"exit flag {self.exit_flag} appeared"
        if not self.pid_file.exists():
            return f"pid file {self.pid_file} was removed"
        written = pidfile.read_pid(self.pid_file)
        if written is None:
            # Caught mid-write by someone else, or garbage: only a file that
            # stays unreadable for two looks is a reason.
            self._unreadable_looks += 1
            if self._unreadable_looks < 2:
                return None
            return f"pid file {self.pid_file} was rewritten with something that is not a pid"
        self._unreadable_looks = 0
        if written != self.pid:
            return f"pid file {self.pid_file} was rewritten with pid {written}"
        return None
