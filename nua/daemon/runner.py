"""The daemon process: hold the pid lock, run the actor tree, react to signals, clean up.

The main thread does nothing but wait for events on a pipe. Signals reach it there
through :func:`signal.set_wakeup_fd` (the C-level handler writes the signal number,
so no Python code runs in signal context and no lock can be taken twice), and the
actor threads post their events (a shutdown request from the sentinel, the root
supervisor's exit) to the same pipe. An actor thread never ends the process
itself: ``sys.exit()`` there would only stop every actor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import gc
import logging
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pykka
import pykka.debug

from nua import log, runtime, settings
from nua.actors import os_process
from nua.actors.directory import GATEWAY, HTTP, Directory
from nua.actors.events import EventHub
from nua.actors.health import Health
from nua.actors.messages import Exited, Ping
from nua.actors.process_loop import ProcessLoop
from nua.actors.service import ServiceHost
from nua.actors.supervisor import ChildSpec
from nua.actors.timers import TimerThread
from nua.daemon import limits, notify, sigmask, tree
from nua.daemon.daemonize import Readiness
from nua.daemon.exit_codes import EXIT_FAILED, EXIT_OK
from nua.endpoint import ipc_path
from nua.http.server import HttpInfo
from nua.pidfile import AlreadyRunningError, PidFile
from nua.rpc.gateway import GatewayInfo
from nua.version import VERSION

# The daemon's exit status: 0 only when it was asked to stop and stopped cleanly.
# EXIT_OK: asked to stop, stopped cleanly. EXIT_FAILED: could not start, gave up (escalation),
# stopped by itself, internal error, stop timed out. EXIT_NOT_CONFIGURED: a setting is wrong,
# or a directory it names is unsafe.

_SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_HANDLED_SIGNALS = tuple(sorted(sigmask.HANDLED))
_POSTED = 0  # never a signal number: "look at the posted events"
# The gateway's I/O thread gives the GIL up at every poll and send; with Python's
# default 5 ms switch interval it then waits up to that long behind an actor running
# Python code (the DB writer building a batch), which delays replies and shrinks the
# next batch. A shorter interval bounds that wait. Process-wide, so set here.
GIL_SWITCH_INTERVAL_S = 0.0005
# How long the daemon waits for the gateway to say which endpoint it bound.
GATEWAY_INFO_TIMEOUT_S = 5.0


class _Kind(enum.Enum):
    SHUTDOWN = "shutdown"  # a graceful stop was requested (sentinel)
    ROOT_EXITED = "root_exited"  # the root supervisor ended


@dataclass(frozen=True)
class _Event:
    kind: _Kind
    reason: str | None


class _ForcedExitError(Exception):
    """A second SIGTERM or SIGINT while shutting down: stop waiting for the actors."""


class _Wakeup:
    """One pipe the main thread blocks on, written by signals and by actor threads."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # set_wakeup_fd requires it
        self._events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        self._previous_fd: int | None = None
        # An abandoned actor may still post after we closed the pipe: its
        # descriptor number could by then name another file.
        self._closed = False
        self._closing = threading.Lock()

    def install(self) -> None:
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for signum in _HANDLED_SIGNALS:
            # The C handler wakes us through the pipe; the Python one has nothing to do.
            signal.signal(signum, _ignore)

    def uninstall(self) -> None:
        # The handlers become no-ops rather than the defaults: a signal during the
        # final clean-up must not kill the process before its files are removed.
        for signum in _HANDLED_SIGNALS:
            signal.signal(signum, _ignore)
        signal.set_wakeup_fd(-1 if self._previous_fd is None else self._previous_fd)
        with self._closing:
            self._closed = True
            os.close(self._read)
            os.close(self._write)

    def post(self, event: _Event) -> None:
        """Called from any thread."""
        self._events.put(event)
        with self._closing:
            if self._closed:
                return
            with contextlib.suppress(BlockingIOError):  # a full pipe wakes the reader anyway
                os.write(self._write, bytes([_POSTED]))

    def wait(self) -> list[int | _Event]:
        """Block until something happens; the signals received and events posted, in order."""
        data = os.read(self._read, 512)
        happened: list[int | _Event] = []
        for byte in data:
            if byte != _POSTED:
                happened.append(byte)
                continue
            with contextlib.suppress(queue.Empty):
                while True:
                    happened.append(self._events.get_nowait())
        return happened


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    return


def _force_exit(_signum: int, _frame: FrameType | None) -> None:
    raise _ForcedExitError


class Daemon:
    """One run of the daemon in this process, from taking the lock to releasing it."""

    def __init__(self, config: settings.Settings, *, foreground: bool, readiness: Readiness | None = None) -> None:
        self.settings = config
        self.foreground = foreground
        self.readiness = readiness or Readiness(None)
        self.pid_file = PidFile(config.server.pid_file)
        self.record_file = runtime.record_path(config.server.pid_file)
        self._record_written: tuple[int, int] | None = None
        self.started_at = time.time()
        self.directory = Directory()
        # The event stream ([events] history): the actors publish what changes, degradations included.
        self.events = EventHub(config.events.history)
        self.health = Health(self.events)
        self.wakeup = _Wakeup()
        self.log = log.get("nua.daemon")  # rebound once the logs are configured
        self.root: pykka.ActorRef[Any] | None = None
        self._specs: list[ChildSpec] = []
        self._root_error: str | None = None
        # The services' processes: one thread reaps every child (we are their subreaper), one keeps time.
        # Made once the logs are configured (they log).
        self.service_host: ServiceHost | None = None

    # -- the whole life ------------------------------------------------------------

    def run(self) -> int:
        """Run until asked to stop; the process's exit code.

        The directories are ready: :func:`prepare_dirs` made or checked them before
        (``control.start`` does, before forking, so that an unsafe one exits 6).
        """
        self._configure_logs()
        limits.raise_fd_limit(self.log)
        limits.return_large_buffers(self.log)
        # Signals are caught from the very start: a SIGTERM while the tree starts
        # waits in the pipe and stops the daemon gracefully once it is up. Those
        # that arrived before (blocked since the entry point) are delivered now.
        self.wakeup.install()
        sigmask.unblock()
        try:
            return self._run_locked()
        finally:
            self.wakeup.uninstall()

    def _run_locked(self) -> int:
        try:
            self.pid_file.acquire()
        except AlreadyRunningError as exc:
            self.log.warning("already_running", pid=exc.pid, pid_file=str(exc.path))
            self.readiness.already_running(exc.pid)
            return EXIT_OK
        except OSError as exc:
            return self._start_failed(f"cannot take the pid file {self.pid_file.path}: {exc}")
        try:
            # Under our lock, a record still there was left by a daemon that died
            # without cleaning up (kill -9): it must not point clients at its endpoint.
            self._remove_stale_record()
            return self._serve()
        finally:
            self._remove_runtime_files()
            self.pid_file.release()
            self.log.info("daemon_exited")

    def _remove_stale_record(self) -> None:
        # Writing ours renames over a record that cannot be removed; until then
        # clients do not trust it (its pid holds no lock).
        for path in [self.record_file, *runtime.leftover_temp_files(self.record_file)]:
            try:
                removed = runtime.remove(path)
            except OSError as exc:
                self.log.error("stale_file_not_removed", path=str(path), error=str(exc))
                continue
            if removed:
                self.log.info("stale_file_removed", path=str(path))

    def _configure_logs(self) -> None:
        server = self.settings.server
        log.configure(server.log_level, log_file=None if self.foreground else server.log_file)
        self.log = log.get("nua.daemon", pid=os.getpid())

    def _serve(self) -> int:
        # Orphaned descendants of services become ours to reap and find, not PID 1's.
        if not os_process.become_subreaper():
            self.log.warning("not_a_subreaper", reason="prctl(PR_SET_CHILD_SUBREAPER) failed")
        timers = TimerThread()
        host = ServiceHost(
            ProcessLoop(reap_all=True),
            timers,
            log_dir=self.settings.services_log_dir,
            record_dir=self.settings.services_record_dir,
            events=self.events,
        )
        host.loop.start()
        timers.start()
        self.service_host = host
        try:
            if not self._start_tree(host):
                return EXIT_FAILED
            self._ready()
            code = self._loop()
            return self._shutdown(code)
        finally:
            timers.stop()
            host.loop.stop()

    # -- start -----------------------------------------------------------------------

    def _start_tree(self, service_host: ServiceHost) -> bool:
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))  # see GIL_SWITCH_INTERVAL_S
        self.log.info(
            "daemon_starting",
            endpoint=self.settings.zmq.bind_endpoint,
            db_url=self.settings.db.safe_url,
            config_file=str(self.settings.config_file) if self.settings.config_file else None,
        )
        self.root, self._specs = tree.start(
            self.settings,
            self.directory,
            request_shutdown=self._request_shutdown,
            on_exit=self._root_exited,
            health=self.health,
            events=self.events,
            service_host=service_host,
        )
        budget = tree.start_budget_s(self._specs)
        try:
            self.root.ask(Ping(), timeout=budget)
        except pykka.ActorDeadError:
            self._start_failed(self._root_error or "the root supervisor stopped while starting")
            return False
        except pykka.Timeout:
            self.root.stop(block=True, timeout=tree.stop_budget_s(self._specs))
            self._start_failed(f"the actor tree did not start within {budget:.0f} s")
            return False
        return True

    def _start_failed(self, reason: str) -> int:
        self.log.error("daemon_start_failed", reason=reason)
        self.readiness.failed(reason)
        return EXIT_FAILED

    def _ready(self) -> None:
        endpoint, server_key = self._bound_endpoint()
        # Before anyone is told we are ready: a client that `start` has just
        # returned to must find the record.
        self._write_record(endpoint, server_key, self._http_url())
        self.log.info("daemon_ready", endpoint=endpoint, children=self.directory.names())
        self.readiness.ready()
        if notify.notify("READY=1"):
            self.log.debug("notified_systemd", state="READY=1")
        # Collection was paused for the start (control.start) and resumes now. What the
        # start made goes to the oldest generation as it is (frozen, then unfrozen: moved,
        # not scanned): otherwise the first collection would scan all of it at once (20 to
        # 50 ms holding the GIL here), just as the first calls arrive. Not left frozen: the
        # first children would then never be collected once a restart replaced them.
        gc.freeze()
        gc.unfreeze()
        gc.enable()

    def _bound_endpoint(self) -> tuple[str | None, str | None]:
        """The endpoint the gateway bound (a tcp port 0 resolved) and its CURVE public key, as it says.

        ``(None, None)`` without RPC; the key is ``None`` without authentication.
        """
        gateway = self.directory.lookup(GATEWAY)
        if gateway is None:
            return None, None
        try:
            info = gateway.ask(GatewayInfo(), timeout=GATEWAY_INFO_TIMEOUT_S)
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            self.log.error("gateway_info_failed", error=repr(exc))
            return None, None
        if not isinstance(info, dict):
            return None, None
        endpoint, server_key = info.get("endpoint"), info.get("server_key")
        return (endpoint if isinstance(endpoint, str) and endpoint else None), server_key

    def _http_url(self) -> str | None:
        """The URL the HTTP server bound, as it says; ``None`` without one."""
        server = self.directory.lookup(HTTP)
        if server is None:
            return None
        try:
            info = server.ask(HttpInfo(), timeout=GATEWAY_INFO_TIMEOUT_S)
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            self.log.error("http_info_failed", error=repr(exc))
            return None
        url = info.get("url") if isinstance(info, dict) else None
        return url if isinstance(url, str) and url else None

    def _write_record(self, endpoint: str | None, server_key: str | None = None, http: str | None = None) -> None:
        """Write the runtime record; a failure is logged, not fatal (clients fall back to the settings)."""
        config_file = self.settings.config_file
        record = runtime.Record(
            pid=os.getpid(),
            started_at=self.started_at,
            version=VERSION,
            endpoint=endpoint,
            settings_endpoint=self.settings.zmq.bind_endpoint,
            config_file=str(config_file) if config_file is not None else None,
            server_key=server_key,
            log_file=None if self.foreground else str(self.settings.server.log_file),
            http=http,
        )
        try:
            self._record_written = runtime.write(self.record_file, record)
        except OSError as exc:
            self.log.error("runtime_record_failed", path=str(self.record_file), error=str(exc))
            return
        self.log.debug("runtime_record_written", path=str(self.record_file), endpoint=endpoint)

    # -- running ---------------------------------------------------------------------

    def _request_shutdown(self, reason: str) -> None:
        # Runs in the sentinel's thread.
        self.wakeup.post(_Event(_Kind.SHUTDOWN, reason))

    def _root_exited(self, exited: Exited) -> None:
        # Runs in the root's thread, before its pending asks fail.
        self._root_error = exited.error
        self.wakeup.post(_Event(_Kind.ROOT_EXITED, exited.error))

    def _loop(self) -> int:
        """Handle events until one ends the daemon; the exit code it calls for."""
        while True:
            for event in self.wakeup.wait():
                code = self._handle(event)
                if code is not None:
                    return code

    def _handle(self, event: int | _Event) -> int | None:
        match event:
            case signal.SIGTERM | signal.SIGINT:
                self.log.info("shutdown_requested", reason=f"signal {signal.Signals(event).name}")
                return EXIT_OK
            case signal.SIGHUP:
                self._reload()
            case signal.SIGUSR1:
                pykka.debug.log_thread_tracebacks()
            case signal.SIGUSR2 if self.service_host is not None:
                self.service_host.loop.reopen_logs()
                self.log.info("service_logs_reopened", log_dir=str(self.service_host.log_dir))
            case _Event(kind=_Kind.SHUTDOWN, reason=reason):
                self.log.info("shutdown_requested", reason=reason)
                return EXIT_OK
            case _Event(kind=_Kind.ROOT_EXITED, reason=reason):
                self.root = None
                if reason is None:
                    # Nobody asked: a supervisor must not end a service as if it had been stopped.
                    self.log.error("root_stopped", reason="the root supervisor stopped on its own")
                    return EXIT_FAILED
                # Escalation: the root already stopped its children in reverse order.
                self.log.error("daemon_escalation", reason=reason)
                return EXIT_FAILED
        return None

    def _reload(self) -> None:
        """Re-open the log file, re-read the settings file; apply what can change while running, log the rest."""
        self._reopen_log()
        source = str(self.settings.config_file) if self.settings.config_file else "defaults and environment"
        try:
            fresh = settings.load(self.settings.config_file)
        except settings.SettingsError as exc:
            self.log.error("reload_failed", source=source, error=str(exc))
            return
        level = fresh.server.log_level
        log.set_level(level)
        applied = dataclasses.replace(self.settings.server, log_level=level)
        self.settings = dataclasses.replace(self.settings, server=applied)
        not_applied = _differences(self.settings, fresh)
        if not_applied:
            self.log.warning("reload_not_applied", keys=not_applied, reason="these take effect at the next restart")
        self.log.info("settings_reloaded", source=source, log_level=level)

    def _reopen_log(self) -> None:
        # First, so that what the reload says lands in the new file.
        try:
            reopened = log.reopen()
        except (OSError, settings.SettingsError) as exc:
            self.log.error("log_reopen_failed", log_file=self.settings.server.log_file, error=str(exc))
            return
        if reopened is not None:
            self.log.info("log_reopened", log_file=str(reopened))

    # -- stop ------------------------------------------------------------------------

    def _shutdown(self, code: int) -> int:
        if notify.notify("STOPPING=1"):
            self.log.debug("notified_systemd", state="STOPPING=1")
        root, self.root = self.root, None
        if root is None:
            return code
        self.log.info("daemon_stopping")
        for signum in _SHUTDOWN_SIGNALS:
            signal.signal(signum, _force_exit)
        budget = tree.stop_budget_s(self._specs)
        try:
            root.stop(block=True, timeout=budget)
        except pykka.Timeout:
            self.log.error("shutdown_timed_out", timeout_s=budget)
            return EXIT_FAILED
        except _ForcedExitError:
            self.log.error("shutdown_forced", reason="signal received again while stopping")
            return EXIT_FAILED
        return code if self._root_error is None else EXIT_FAILED

    def _remove_runtime_files(self) -> None:
        # Still under our pid lock: no other daemon can be using these. The exit
        # flag, if it ended us, has been consumed. The record only if it is still
        # the one we wrote: had our pid file been removed, a newer daemon may own it.
        written, self._record_written = self._record_written, None
        if written is not None:
            try:
                runtime.remove(self.record_file, written)
            except OSError as exc:
                self.log.error("runtime_record_not_removed", path=str(self.record_file), error=str(exc))
        socket_file = ipc_path(self.settings.zmq.bind_endpoint)
        if socket_file is not None and socket_file.is_socket():
            socket_file.unlink(missing_ok=True)
        Path(self.settings.server.exit_flag).unlink(missing_ok=True)


def prepare_dirs(config: settings.Settings, *, foreground: bool) -> None:
    """Make (or check) the directories of the pid file, the socket and, daemonised, the log file.

    ``SettingsError`` naming the path when one is unsafe (see ``settings.private_dir``).
    """
    places = [Path(config.server.pid_file).parent]
    if not foreground:
        places.append(Path(config.server.log_file).parent)
    for place in places:
        settings.private_dir(place)
    socket_file = ipc_path(config.zmq.bind_endpoint)
    if socket_file is not None and config.server.start_zmq_server:
        # No other account may reach the socket, from the moment it exists.
        settings.private_dir(socket_file.parent, owner_only=True)


def _differences(current: settings.Settings, fresh: settings.Settings) -> list[str]:
    """The ``[section] key`` names whose values differ."""
    changed: list[str] = []
    for section in dataclasses.fields(current):
        if section.name in {"config_file", "origins"}:  # where values came from, not values
            continue
        if section.name == "services":
            if current.services != fresh.services:
                changed.append("[services]")
            continue
        old, new = getattr(current, section.name), getattr(fresh, section.name)
        changed.extend(
            f"[{section.name}] {field.name}"
            for field in dataclasses.fields(old)
            if getattr(old, field.name) != getattr(new, field.name)
        )
    return changed


def run(config: settings.Settings, *, foreground: bool, readiness: Readiness | None = None) -> int:
    """Run the daemon in this process until it stops; its exit code. Call :func:`prepare_dirs` first."""
    daemon = Daemon(config, foreground=foreground, readiness=readiness)
    try:
        code = daemon.run()
    except Exception as exc:  # a bug of ours: still say why, and still exit
        daemon.log.exception("daemon_crashed", error=repr(exc))
        daemon.readiness.failed(f"internal error: {exc!r}")
        code = EXIT_FAILED
    logging.shutdown()
    sys.stdout.flush()
    return code
