"""The daemon process: hold the pid lock, run the actor tree, react to signals, clean up.

Ready early: once it holds the pid lock, listens on its endpoint (a socket it makes
itself, as systemd's socket activation would, which the gateway then hands to
libzmq: :mod:`nua.rpc.bound`) and has checked its database the cheap way
(:mod:`nua.model.sqlite_check`), the daemon writes its runtime record and says it
is ready; only then does it load the rest (SQLAlchemy, ZeroMQ, the actors: most of
a start's CPU) and start its actor tree. A client that connects meanwhile waits in
the listen queue and is served once the gateway runs. When the database or the
endpoint cannot be handled that way (PostgreSQL; a host name), the daemon is
ready only once its tree runs. See "Running as a service" in the README.

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
from typing import TYPE_CHECKING, Any, TextIO

from nua import curve_keys, log, pidfile, runtime, settings
from nua.actors.events import EventHub
from nua.actors.health import Health
from nua.daemon import limits, notify, sigmask
from nua.daemon.daemonize import Readiness
from nua.daemon.exit_codes import EXIT_FAILED, EXIT_OK
from nua.endpoint import ipc_path
from nua.model import sqlite_check
from nua.pidfile import AlreadyRunningError, PidFile
from nua.rpc import bound, credentials
from nua.version import VERSION

if TYPE_CHECKING:
    # What serving needs is imported once the daemon is ready (Daemon._start_tree), not by a start.
    import pykka
    import structlog

    from nua.actors.directory import Directory
    from nua.actors.messages import Exited
    from nua.actors.service import ServiceHost
    from nua.actors.supervisor import ChildSpec

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
# How long the HTTP server may take to say which URL it bound.
HTTP_INFO_TIMEOUT_S = 5.0


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
        self._record_args: tuple[str | None, str | None] = (None, None)  # endpoint and server key, once ready
        self._server_key: str | None = None  # the CURVE public key, when it authenticates
        self.started_at = time.time()
        self.directory: Directory | None = None  # made with the tree
        # The event stream ([events] history): the actors publish what changes, degradations included.
        self.events = EventHub(config.events.history)
        self.health = Health(self.events)
        self.wakeup = _Wakeup()
        # Lines wait until the logs are configured (after ready when the daemon is ready early: see log.early).
        self.log: log.EarlyLogger | structlog.stdlib.BoundLogger = log.early("nua.daemon", pid=os.getpid())
        self._logs_configured = False
        self._log_stream: TextIO | None = None  # the log file, opened before ready (daemonised)
        self.root: pykka.ActorRef[Any] | None = None
        self._specs: list[ChildSpec] = []
        self._root_error: str | None = None
        # The services' processes: one thread reaps every child (we are their subreaper), one keeps time.
        # Made once the logs are configured (they log).
        self.service_host: ServiceHost | None = None
        # The gateway's endpoint, bound before the tree starts; its first incarnation takes the socket over.
        self.bound = bound.BoundEndpoint()

    # -- the whole life ------------------------------------------------------------

    def run(self) -> int:
        """Run until asked to stop; the process's exit code.

        The directories are ready: :func:`prepare_dirs` made or checked them before
        (``control.start`` does, before forking, so that an unsafe one exits 6).
        """
        try:
            limits.raise_fd_limit(self.log)
            limits.return_large_buffers(self.log)
            # Signals are caught from the very start: a SIGTERM while the tree starts
            # waits in the pipe and stops the daemon gracefully once it is up. Those
            # that arrived before (blocked since the entry point) are delivered now.
            self.wakeup.install()
            sigmask.unblock()
            return self._run_locked()
        finally:
            self._configure_logs()  # the lines of a start that ended before it configured them
            self.wakeup.uninstall()

    def _run_locked(self) -> int:
        try:
            self.pid_file.acquire()
        except AlreadyRunningError as exc:
            self.log.warning("already_running", pid=exc.pid, pid_file=str(exc.path))
            self._configure_logs()  # written before `start` answers: this process is all but gone then
            self.readiness.already_running(exc.pid)
            return EXIT_OK
        except OSError as exc:
            return self._start_failed(f"cannot take the pid file {self.pid_file.path}: {exc}")
        try:
            # Under our lock, a record still there was left by a daemon that died
            # without cleaning up (kill -9): it must not point clients at its endpoint.
            self._remove_stale_files()
            return self._serve()
        finally:
            self._remove_runtime_files()
            self.pid_file.release()
            self.log.info("daemon_exited")

    def _remove_stale_files(self) -> None:
        """Remove what a daemon that died without cleaning up (kill -9) left: under our lock, none is in use.

        Before we bind and say we are ready: after that, an exit flag is a request.
        Writing our record renames over one that cannot be removed; until then clients
        do not trust it (its pid holds no lock).
        """
        stale = [
            self.record_file,
            *runtime.leftover_temp_files(self.record_file),
            *pidfile.stale_temp_files(self.pid_file.path),
        ]
        socket_file = ipc_path(self.settings.zmq.bind_endpoint)
        if socket_file is not None and socket_file.is_socket():
            stale.append(socket_file)
        flag = Path(self.settings.server.exit_flag)
        with contextlib.suppress(OSError):  # none there (or unreadable: the sentinel will say so)
            if flag.lstat().st_uid in {0, os.geteuid()}:  # another account's flag is not ours to remove
                stale.append(flag)
        for path in stale:
            try:
                removed = runtime.remove(path)
            except OSError as exc:
                self.log.error("stale_file_not_removed", path=str(path), error=str(exc))
                continue
            if removed:
                self.log.info("stale_file_removed", path=str(path))

    def _open_log(self) -> str | None:
        """Open the log file (daemonised), before ready; why it cannot be written, if not (the start fails)."""
        if self.foreground:
            return None
        try:
            self._log_stream = log.open_file(self.settings.server.log_file)
        except (OSError, settings.SettingsError) as exc:
            return f"cannot write the log file {self.settings.server.log_file} ([server] log_file): {exc}"
        return None

    def _configure_logs(self) -> None:
        """Configure the logs, once, which writes the lines kept until then (structlog loads now)."""
        if self._logs_configured:
            return
        self._logs_configured = True
        server = self.settings.server
        try:
            log.configure(
                server.log_level, log_file=None if self.foreground else server.log_file, stream=self._log_stream
            )
        except (OSError, settings.SettingsError):
            # Only a start that ended before its log file was opened (_open_log): its lines
            # go to the console, if any (a daemonised process's is /dev/null); `start` printed why.
            log.configure(server.log_level)
        self.log = log.get("nua.daemon", pid=os.getpid())

    def _serve(self) -> int:
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))  # see GIL_SWITCH_INTERVAL_S
        failed = self._open_log()
        if failed is not None:
            return self._start_failed(failed)
        self.log.info(
            "daemon_starting",
            endpoint=self.settings.zmq.bind_endpoint,
            db_url=self.settings.db.safe_url,
            config_file=str(self.settings.config_file) if self.settings.config_file else None,
        )
        try:
            listening = self._listen()
        except (OSError, settings.SettingsError, curve_keys.KeyFileError) as exc:
            return self._start_failed(f"the gateway cannot listen: {exc}")
        try:
            # The HTTP server binds its port in its actor: with one, a port in use must still fail `start`.
            early = listening and not self.settings.http.enabled and sqlite_check.checkable(self.settings.db)
            return self._serve_listening(early=early)
        finally:
            unserved, self.bound.prebound = self.bound.prebound, None
            if unserved is not None:  # the tree stopped before the gateway took it
                unserved.close()

    def _listen(self) -> bool:
        """Listen on the endpoint before the gateway exists, if it can be done here (see ``nua.rpc.bound``).

        ``True`` when the daemon can be reached now (or RPC is off); the server's public key is read too.
        """
        if not self.settings.server.start_zmq_server:
            return True
        if self.settings.zmq.curve:
            self._server_key = credentials.server_pair(self.settings).public
        made = bound.prebind(self.settings.zmq.bind_endpoint)
        if made is None:
            return False
        self.bound.prebound, self.bound.endpoint = made
        return True

    def _serve_listening(self, *, early: bool) -> int:
        # Ready before the tree starts when the endpoint listens and the database can be checked without it.
        if early:
            try:
                sqlite_check.check(self.settings.db)
            except sqlite_check.DatabaseCheckError as exc:
                return self._start_failed(f"the database cannot be used: {exc}")
            self._ready(serving=False)
        # structlog, loaded only now that the daemon is ready (or waits for its tree), then what serving needs.
        self._configure_logs()
        from nua.actors import os_process  # noqa: PLC0415
        from nua.actors.process_loop import ProcessLoop  # noqa: PLC0415
        from nua.actors.service import ServiceHost  # noqa: PLC0415
        from nua.actors.timers import TimerThread  # noqa: PLC0415

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
            if not early:
                self._ready(serving=True)
            self._serving(rewrite_record=early)
            code = self._loop()
            return self._shutdown(code)
        finally:
            timers.stop()
            host.loop.stop()

    # -- start -----------------------------------------------------------------------

    def _start_tree(self, service_host: ServiceHost) -> bool:
        import pykka  # noqa: PLC0415 - see _serve_listening

        from nua.actors.directory import Directory  # noqa: PLC0415
        from nua.actors.messages import Ping  # noqa: PLC0415
        from nua.daemon import tree  # noqa: PLC0415

        self.directory = Directory()
        self.root, self._specs = tree.start(
            self.settings,
            self.directory,
            request_shutdown=self._request_shutdown,
            on_exit=self._root_exited,
            health=self.health,
            events=self.events,
            service_host=service_host,
            bound=self.bound,
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
        # After an early ready nobody waits for this report any more: the log says it, and the exit status.
        self.log.error("daemon_start_failed", reason=reason)
        self.readiness.failed(reason)
        return EXIT_FAILED

    def _ready(self, *, serving: bool) -> None:
        endpoint, server_key = self.bound.endpoint, self._server_key
        self._record_args = (endpoint, server_key)
        # Before anyone is told we are ready: a client that `start` has just
        # returned to must find the record.
        self._write_record(endpoint, server_key, serving=serving)
        # Its CPU so far (this process's: a daemonised one counts from its fork), for bench/lifecycle.py.
        self.log.info("daemon_ready", endpoint=endpoint, cpu_s=round(time.process_time(), 4))
        self.readiness.ready()
        if notify.notify("READY=1"):
            self.log.debug("notified_systemd", state="READY=1")

    def _serving(self, *, rewrite_record: bool) -> None:
        """The tree runs: say so (in the runtime record too, if it said otherwise), and resume collecting garbage.

        The HTTP server's URL (a port 0 resolved) is known only now: a record written before gets it now.
        """
        http = self._http_url()
        if rewrite_record or http is not None:
            self._write_record(*self._record_args, serving=True, http=http)
        children = self.directory.names() if self.directory is not None else []
        self.log.info("daemon_serving", children=children)
        # Collection was paused for the start (control.start) and resumes now. What the
        # start made goes to the oldest generation as it is (frozen, then unfrozen: moved,
        # not scanned): otherwise the first collection would scan all of it at once (20 to
        # 50 ms holding the GIL here), just as the first calls arrive. Not left frozen: the
        # first children would then never be collected once a restart replaced them.
        gc.freeze()
        gc.unfreeze()
        gc.enable()

    def _http_url(self) -> str | None:
        """The URL the HTTP server bound, as it says; ``None`` without one."""
        import pykka  # noqa: PLC0415 - see _serve_listening

        from nua.actors.directory import HTTP  # noqa: PLC0415

        server = self.directory.lookup(HTTP) if self.directory is not None else None
        if server is None:
            return None
        from nua.http.server import HttpInfo  # noqa: PLC0415 - imported only with an HTTP server (see tree.py)

        try:
            info = server.ask(HttpInfo(), timeout=HTTP_INFO_TIMEOUT_S)
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            self.log.error("http_info_failed", error=repr(exc))
            return None
        url = info.get("url") if isinstance(info, dict) else None
        return url if isinstance(url, str) and url else None

    def _write_record(
        self, endpoint: str | None, server_key: str | None = None, *, serving: bool = True, http: str | None = None
    ) -> None:
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
            serving=serving,
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
                import pykka.debug  # noqa: PLC0415 - loaded with the tree

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
        import pykka  # noqa: PLC0415 - loaded with the tree

        from nua.daemon import tree  # noqa: PLC0415

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
        if section.name in ("services", "jobs"):  # tables of tables: named as a whole
            if getattr(current, section.name) != getattr(fresh, section.name):
                changed.append(f"[{section.name}]")
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
