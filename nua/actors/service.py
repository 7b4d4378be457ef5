"""The actor that owns one service's OS process: start, watch, restart with backoff, stop.

States are supervisord's: ``STOPPED`` (never started or stopped by request),
``STARTING`` (up for less than ``start_s``), ``RUNNING``, ``BACKOFF`` (a start
failed; waiting to try again), ``STOPPING``, ``EXITED`` (ended and not to be
restarted: a ``temporary`` service, or a ``transient`` one that exited with 0) and
``FATAL`` (``max_retries`` failed starts in a row; one log line says so).

The actor does not crash when its process does: it restarts the process itself,
so a flapping service never spends the daemon's restart intensity (that is for
bugs in nua). A process that ends while ``RUNNING`` is started again at once
(``permanent``; ``transient`` only after a non-zero exit or a signal); one that ends
before ``start_s`` is a failed start, retried after 1, 2, 4 … ``backoff_s``
(at most ``backoff_max_s``). A manual start resets the count.

A stop sends ``stop_signal`` to the process group, waits ``stop_timeout_s`` for it
to end, SIGKILLs what is left, waits for the process loop to reap the leader, then
finds the service's processes that left the group (by their ``NUA_SERVICE`` mark),
reports and ends them. Every signal goes through a check of the process's identity
(:class:`~nua.actors.os_process.Identity`).

Each running process is recorded in ``{record_dir}/NAME.json`` (pid, creation time,
mark). After the daemon was killed without stopping its services, the next start
finds that record and stops what it names before starting the service: a service
never runs twice (nua stops rather than adopts: an adopted process's output pipe
died with the old daemon).
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pykka

from nua.actors import os_process
from nua.actors.events import EventHub
from nua.actors.process_loop import ProcessLoop
from nua.actors.service_log import ServiceLog
from nua.actors.supervised import ChildContext, SupervisedActor
from nua.actors.timers import Cancel, Timers
from nua.service_settings import ServiceConfig

if TYPE_CHECKING:
    import psutil

# How long a stop waits for the process loop to reap a leader already killed.
REAP_WAIT_S = 5.0


class ServiceState(enum.StrEnum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    EXITED = "EXITED"
    FATAL = "FATAL"


@dataclass(frozen=True)
class ServiceHost:
    """What every service actor of a daemon shares."""

    loop: ProcessLoop
    timers: Timers
    log_dir: Path
    record_dir: Path
    # Which daemon started a process: part of each service's NUA_SERVICE mark.
    instance: str = field(default_factory=lambda: f"{os.getpid()}-{time.time_ns()}")
    clock: Callable[[], float] = time.monotonic
    # Told (service, state) at each change of state, in the service's thread (tests wait on it).
    observer: Callable[[str, str], None] | None = None
    # Where each change of state, and each new process, is published as ``service.state``.
    events: EventHub | None = None


# -- requests (asks or calls), each answered with the service's status ------------------------


@dataclass(frozen=True)
class StartService:
    """Start the service if it is not running (resetting its failed starts)."""


@dataclass(frozen=True)
class StopService:
    """Stop the service's processes; it stays ``STOPPED`` until started."""


@dataclass(frozen=True)
class RestartService:
    """Stop, then start."""


@dataclass(frozen=True)
class SignalService:
    """Send ``signum`` to the service's process group; :class:`NotRunningError` if it has none."""

    signum: int


@dataclass(frozen=True)
class ServiceStatus:
    """The service's state and figures, as a JSON-ready dict."""


class NotRunningError(RuntimeError):
    """A signal for a service that has no process."""


# -- what the loop and the timers tell the actor --------------------------------------------


@dataclass(frozen=True)
class _ProcessExited:
    serial: int
    code: int


@dataclass(frozen=True)
class _StartWindowPassed:
    serial: int


@dataclass(frozen=True)
class _BackoffOver:
    serial: int


@dataclass(eq=False)
class _Run:
    """One process of the service, from its start to its reaping."""

    serial: int
    popen: Any
    identity: os_process.Identity | None
    started: float
    gone: threading.Event = field(default_factory=threading.Event)
    code: int | None = None
    # Kept between status samples: psutil's first cpu_percent() of a Process reads 0.0.
    sampler: psutil.Process | None = None

    @property
    def pid(self) -> int:
        return int(self.popen.pid)


def describe_exit(code: int) -> dict[str, Any]:
    """An exit status as shown: ``{"code": n}``, or ``{"signal": "SIGKILL"}`` for a negative one."""
    if code < 0:
        try:
            return {"signal": signal.Signals(-code).name}
        except ValueError:
            return {"signal": str(-code)}
    return {"code": code}


class Service(SupervisedActor):
    """Owns one service's process; see the module's doc."""

    def __init__(self, context: ChildContext, config: ServiceConfig, host: ServiceHost) -> None:
        super().__init__(context)
        self.config = config
        self.host = host
        self.state = ServiceState.STOPPED
        self.mark = f"{config.name}@{host.instance}"
        self._run: _Run | None = None
        self._serial = 0
        self._timer: Cancel | None = None
        self.failed_starts = 0
        self.restarts = 0
        self.last_exit: dict[str, Any] | None = None
        self._record = host.record_dir / f"{config.name}.json"
        self._output: ServiceLog | None = None
        self._published_pid: int | None = None  # the pid of the last service.state event

    # -- lifecycle ---------------------------------------------------------------------------

    def setup(self) -> None:
        self._stop_left_running()
        self._output = self.host.loop.open_log(
            ServiceLog(
                self.host.log_dir / f"{self.config.name}.log", self.config.log_max_bytes, self.config.log_backups
            )
        )
        if self.config.autostart:
            self._spawn()

    def cleanup(self, error: BaseException | None) -> None:  # noqa: ARG002 - stopped the same way whatever the cause
        self._stop()
        if self._output is not None:
            self.host.loop.close_log(self._output)

    def on_receive(self, message: Any) -> Any:
        match message:
            case ServiceStatus() | StartService() | StopService() | RestartService() | SignalService():
                self._request(message)
                return self.status()
            case _ProcessExited() | _StartWindowPassed() | _BackoffOver():
                self._event(message)
                return None
            case _:
                return super().on_receive(message)

    def _request(self, request: Any) -> None:
        match request:
            case StartService():
                self._manual_start()
            case StopService():
                self._stop()
            case RestartService():
                self._stop()
                self._manual_start()
            case SignalService(signum):
                self._signal(signum)

    def _event(self, event: Any) -> None:
        match event:
            case _ProcessExited(serial, code):
                self._exited(serial, code)
            case _StartWindowPassed(serial):
                if self._run is not None and serial == self._run.serial and self.state is ServiceState.STARTING:
                    self._set_running()
            case _BackoffOver(serial):
                if serial == self._serial and self.state is ServiceState.BACKOFF:
                    self.restarts += 1
                    self._spawn()

    # -- starting --------------------------------------------------------------------------

    def _manual_start(self) -> None:
        if self._run is not None:
            return
        self._cancel_timer()
        self.failed_starts = 0
        self._spawn()

    def _spawn(self) -> None:
        assert self._output is not None  # noqa: S101 - set up before any start
        self._serial += 1
        serial = self._serial
        ref = self.actor_ref
        run_box: list[_Run] = []

        def exited(code: int) -> None:  # in the process loop's thread
            if run_box:
                run_box[0].code = code
                run_box[0].gone.set()
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_ProcessExited(serial, code))

        try:
            popen = self.host.loop.spawn(lambda: os_process.launch(self.config, self.mark), self._output, exited)
        except (OSError, KeyError, ValueError) as exc:  # no such program, account or directory
            self.log.error("service_spawn_failed", service=self.config.name, error=str(exc))
            self.last_exit = {"error": f"cannot start: {exc}", "at": _now_iso()}
            self._failed_start()
            return
        import psutil  # noqa: PLC0415 - loaded with the first service (a start without any needs none)

        identity = os_process.Identity.of(popen.pid)
        run = _Run(serial, popen, identity, self.host.clock())
        if identity is not None:
            with contextlib.suppress(psutil.Error):
                run.sampler = psutil.Process(popen.pid)
                run.sampler.cpu_percent(None)
        run_box.append(run)
        if popen.returncode is not None:  # reaped before the box was filled
            run.code = popen.returncode
            run.gone.set()
        self._run = run
        self._write_record(run)
        self.log.info("service_started", service=self.config.name, pid=popen.pid)
        if self.config.start_s == 0:
            self._set_running()
        else:
            self._enter(ServiceState.STARTING)
            self._later(self.config.start_s, _StartWindowPassed(serial))

    def _enter(self, state: ServiceState) -> None:
        previous, self.state = self.state, state
        pid = self._run.pid if self._run is not None else None
        # A new process in the same state (a RUNNING service replaced at once) is news too.
        if self.host.events is not None and (state is not previous or pid != self._published_pid):
            self.host.events.publish(
                "service.state",
                service=self.config.name,
                state=state.value,
                previous=previous.value,
                pid=pid,
                restarts=self.restarts,
            )
        self._published_pid = pid
        if self.host.observer is not None:
            self.host.observer(self.config.name, state)

    def _set_running(self) -> None:
        self._enter(ServiceState.RUNNING)
        self.failed_starts = 0

    def _failed_start(self) -> None:
        self.failed_starts += 1
        if self.failed_starts > self.config.max_retries:
            self._enter(ServiceState.FATAL)
            self.log.error(
                "service_fatal",
                service=self.config.name,
                failed_starts=self.failed_starts,
                last_exit=self.last_exit,
            )
            return
        self._enter(ServiceState.BACKOFF)
        self._later(self.config.backoff_delay_s(self.failed_starts), _BackoffOver(self._serial))

    def _later(self, delay_s: float, message: Any) -> None:
        self._cancel_timer()
        ref = self.actor_ref

        def fire() -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(message)

        self._timer = self.host.timers.call_later(delay_s, fire)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer()
            self._timer = None

    # -- exits -------------------------------------------------------------------------------

    def _exited(self, serial: int, code: int) -> None:
        run = self._run
        if run is None or serial != run.serial:
            return  # a process this actor stopped itself
        self._run = None
        self._cancel_timer()
        self.last_exit = {**describe_exit(code), "at": _now_iso()}
        # What the leader left in its group must not run beside its replacement.
        if run.identity is not None and os_process.group_exists(run.pid):
            leftovers = os_process.group_members(run.pid, run.identity.create_time)
            if leftovers:
                pids = [p.pid for p in leftovers]
                self.log.warning("service_group_leftovers_killed", service=self.config.name, pids=pids)
                os_process.end_group(run.pid, run.identity.create_time, signal.SIGKILL, self.config.stop_timeout_s)
        self._remove_record()
        was = self.state
        self.log.info("service_exited", service=self.config.name, state=was, **describe_exit(code))
        if was is ServiceState.STARTING:
            self._failed_start()
            return
        restart = self.config.restart
        if restart == "permanent" or (restart == "transient" and code != 0):
            self.restarts += 1
            self._spawn()
        else:
            self._enter(ServiceState.EXITED)

    # -- stopping -----------------------------------------------------------------------------

    def _stop(self) -> None:
        self._cancel_timer()
        run, self._run = self._run, None
        if run is None:
            if self.state is not ServiceState.EXITED:
                self._enter(ServiceState.STOPPED)
            return
        self._enter(ServiceState.STOPPING)
        killed = self._end_group(run) if run.identity is not None else []
        if killed:
            pids = [p.pid for p in killed]
            self.log.warning(
                "service_killed", service=self.config.name, pids=pids, timeout_s=self.config.stop_timeout_s
            )
        if not run.gone.wait(REAP_WAIT_S):
            self.log.error("service_not_reaped", service=self.config.name, pid=run.pid)
        # A subreaper was given the escaped descendants: no need to look through every process.
        among = os_process.own_descendants(skip=self.host.loop.owned()) if self.host.loop.reap_all else None
        strays = os_process.escaped(self.mark, run.pid, among)
        if strays:
            self.log.warning("service_escaped_processes", service=self.config.name, pids=[p.pid for p in strays])
            os_process.terminate(strays, self.config.stop_signum, self.config.stop_timeout_s)
        if run.code is not None:
            self.last_exit = {**describe_exit(run.code), "at": _now_iso()}
        self._remove_record()
        self._enter(ServiceState.STOPPED)
        self.log.info("service_stopped", service=self.config.name, pid=run.pid)

    def _end_group(self, run: _Run) -> list[psutil.Process]:
        """Stop the process group of ``run``; the processes that needed SIGKILL.

        The quick way first: ``stop_signal`` to the group while its leader, not yet
        reaped, holds the group id (the process loop checks that under its reaping
        lock), then a wait for the leader's end (the loop's event). Only if members
        are left is the group looked for, waited for on pidfds for the rest of
        ``stop_timeout_s``, and SIGKILLed.
        """
        assert run.identity is not None  # noqa: S101 - the caller checked
        signum, timeout_s = self.config.stop_signum, self.config.stop_timeout_s
        deadline = time.monotonic() + timeout_s
        if (
            self.host.loop.signal_group(run.pid, signum)
            and run.gone.wait(timeout_s)
            and not os_process.group_exists(run.pid)
        ):
            return []
        leader = run.identity.process() if not run.gone.is_set() else None
        also = [leader] if leader is not None else []
        return os_process.end_group(
            run.pid, run.identity.create_time, signum, max(deadline - time.monotonic(), 0.0), also
        )

    def _signal(self, signum: int) -> None:
        run = self._run
        if run is None or run.gone.is_set() or not self.host.loop.signal_group(run.pid, signum):
            msg = f"service {self.config.name!r} has no running process"
            raise NotRunningError(msg)

    # -- the record of a running process, for the next daemon after a crash ----------------------

    def _write_record(self, run: _Run) -> None:
        if run.identity is None:
            return
        record = {"pid": run.pid, "create_time": run.identity.create_time, "mark": self.mark}
        self._record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self._record.with_suffix(".tmp")
        temporary.write_text(json.dumps(record), encoding="utf-8")
        temporary.replace(self._record)

    def _remove_record(self) -> None:
        self._record.unlink(missing_ok=True)

    def _stop_left_running(self) -> None:
        """Stop what a previous daemon, killed without stopping it, left running of this service."""
        try:
            record = json.loads(self._record.read_text(encoding="utf-8"))
            identity = os_process.Identity(int(record["pid"]), float(record["create_time"]))
            mark = str(record["mark"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError):
            self.log.warning("service_record_unreadable", service=self.config.name, path=str(self._record))
            self._remove_record()
            return
        found = os_process.group_members(identity.pid, identity.create_time)
        leader = identity.process()
        if leader is not None and all(p.pid != leader.pid for p in found):
            found.append(leader)
        found += os_process.escaped(mark, identity.pid)
        if found:
            self.log.warning("service_left_running", service=self.config.name, pids=[p.pid for p in found])
            timeout_s = self.config.stop_timeout_s
            os_process.end_group(identity.pid, identity.create_time, self.config.stop_signum, timeout_s, found)
        self._remove_record()

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The state and figures ``service_get``, ``status`` and ``nua service list`` show."""
        run = self._run
        figures: dict[str, Any] = dict.fromkeys(("pid", "uptime_s", "cpu_percent", "rss_bytes"))
        figures["group_size"] = 0
        if run is not None and not run.gone.is_set():
            figures["pid"] = run.pid
            figures["uptime_s"] = round(self.host.clock() - run.started, 3)
            if run.sampler is not None:
                import psutil  # noqa: PLC0415 - loaded by the start of this run already

                with contextlib.suppress(psutil.Error):
                    with run.sampler.oneshot():
                        figures["cpu_percent"] = run.sampler.cpu_percent(None)
                        figures["rss_bytes"] = run.sampler.memory_info().rss
                    # The kernel's children lists, not psutil's children(), which reads every process.
                    descendants = os_process.descendant_pids(run.pid)
                    figures["group_size"] = 1 + sum(1 for pid in descendants if _pgid(pid) == run.pid)
        return {
            "name": self.config.name,
            "state": str(self.state),
            **figures,
            "restarts": self.restarts,
            "failed_starts": self.failed_starts,
            "last_exit": self.last_exit,
        }


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
