"""``start``, ``stop``, ``restart`` and ``status``: what an operator runs, as functions.

Each returns the exit code the ``nua-orchestrator`` command exits with (``status``
returns a dict carrying it) and prints one line saying what happened; inside
:func:`collecting`, the lines are collected instead (:mod:`nua.daemon.api`). They find
the daemon through the pid file's lock, never through the file's mere existence,
and reach it through its runtime record (:mod:`nua.runtime`), the settings'
endpoint serving only when there is no record to trust.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import os
import select
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from nua import curve_keys, pidfile, runtime, settings
from nua.daemon.daemonize import UMASK as DAEMON_UMASK
from nua.daemon.daemonize import Outcome, Readiness, Report, daemonize
from nua.daemon.exit_codes import (
    EXIT_FAILED,
    EXIT_NOT_CONFIGURED,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    STATUS_DEAD_PID_FILE,
    STATUS_NOT_RUNNING,
    STATUS_RUNNING,
    STATUS_UNKNOWN,
)
from nua.endpoint import ipc_path, is_free

NAME = "nua-orchestrator"
# `status` must never hang on a stuck daemon.
STATUS_RPC_TIMEOUT_S = 2.0
# A daemon is ready before its actor tree has started (see runner) and says in its runtime
# record when it serves: until then, `status` gives its first answer this long (the tree's start).
STARTING_RPC_TIMEOUT_S = 30.0
# After SIGKILL the kernel needs a moment to reap; beyond this something is badly wrong.
KILL_WAIT_S = 5.0
# How long the original process waits for a daemonised one to say it is ready.
READY_TIMEOUT_S = 120.0


# Where the commands' lines go: printed (the CLI), or collected (the Python API, which prints nothing).
_COLLECTED: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("nua_control_lines", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[list[str]]:
    """Collect what the commands called inside would print, instead of printing it."""
    lines: list[str] = []
    token = _COLLECTED.set(lines)
    try:
        yield lines
    finally:
        _COLLECTED.reset(token)


def _say(message: str) -> None:
    collected = _COLLECTED.get()
    if collected is not None:
        collected.append(message)
        return
    print(f"{NAME}: {message}", flush=True)  # noqa: T201 - the commands' output


def _complain(message: str) -> None:
    collected = _COLLECTED.get()
    if collected is not None:
        collected.append(message)
        return
    print(f"{NAME}: {message}", file=sys.stderr, flush=True)  # noqa: T201


def _load(config: str | Path | None, *, deep: bool = True) -> settings.Settings | None:
    # deep=False for the commands that only find a daemon: a database driver or a scrypt
    # cost broken since it started must not stop `stop`, nor cost `status` SQLAlchemy and a hash.
    try:
        return settings.load(config, deep=deep)
    except settings.SettingsError as exc:
        _complain(str(exc))
        return None


# -- start -----------------------------------------------------------------------------


def _pid_file_taken(path: Path, *, foreground: bool) -> int | None:
    """The exit code when the pid file says not to start (running already, or another account's); else None.

    Already running is success for a daemonising start (LSB), a failure for a
    foreground one: nothing would run in the foreground.
    """
    try:
        pidfile.check_owner(path)
    except pidfile.ForeignPidFileError as exc:
        _complain(f"cannot take the pid file: {exc}")
        return EXIT_FAILED
    state = pidfile.inspect(path)
    if state.locked:
        if foreground:
            _complain(
                f"already running (pid {state.pid}, pid file {path}): nothing runs in the foreground;"
                " stop it first (nua-orchestrator stop), or give this one other settings (--config)"
            )
            return EXIT_FAILED
        _say(f"already running (pid {state.pid})")
        return EXIT_OK
    return None


def start(config: str | Path | None = None, *, foreground: bool = False) -> int:
    """Start the daemon; return when it is ready (or has failed), or run it here with ``foreground``.

    The cyclic garbage collector is paused while the daemon starts: a start is
    mostly imports, whose objects stay for good, and collecting among them took a
    tenth of it. The daemon resumes collection once it serves (``runner``); this
    process, when the call returns.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _start(config, foreground=foreground)
    finally:
        if collecting:
            gc.enable()


def _start(config: str | Path | None, *, foreground: bool) -> int:
    loaded = _load(config)
    if loaded is None:
        return EXIT_NOT_CONFIGURED
    taken = _pid_file_taken(Path(loaded.server.pid_file), foreground=foreground)
    if taken is not None:
        return taken
    # Imported here, before forking so that it is done once: `status` and
    # `stop` need none of the actor machinery (SQLAlchemy, ZeroMQ).
    from nua.daemon import runner  # noqa: PLC0415
    from nua.rpc import credentials  # noqa: PLC0415

    try:
        runner.prepare_dirs(loaded, foreground=foreground)
        # Its key files too: a secret key open to others is a setting to fix (exit 6), found before forking.
        credentials.prepare(loaded)
        _check_database_file(loaded)
        if not foreground:
            _check_log_file(Path(loaded.server.log_file))
    except (settings.SettingsError, curve_keys.KeyFileError) as exc:
        _complain(str(exc))
        return EXIT_NOT_CONFIGURED
    except OSError as exc:
        _complain(f"cannot prepare the daemon's directories: {exc}")
        return EXIT_FAILED

    if foreground:
        return runner.run(loaded, foreground=True)
    _load_before_fork()
    outcome = daemonize(READY_TIMEOUT_S)
    if isinstance(outcome, Readiness):
        # The daemon: it must never return into the caller's code (a script that
        # called nua.start() would carry on twice), whatever happens.
        code = EXIT_FAILED
        try:
            code = runner.run(loaded, foreground=False, readiness=outcome)
        finally:
            os._exit(code)
    return _report_start(outcome, loaded)


def _load_before_fork() -> None:
    """Load here, in ``start``'s process, what the daemon loads later and whose start-up runs much library code once.

    hashlib's and ssl's start-up runs OpenSSL's (every digest listed, the library
    set up: 4 MiB of libcrypto), ZeroMQ's libstdc++'s, libm's and libzmq's (1.5
    MiB), decimal's (for SQLAlchemy) and unicodedata's (for nua.model.text) 0.3 MiB.
    Nothing runs that code again, and a fork does not copy a library's page
    mappings: loaded here, those pages stay mapped in this short-lived process only,
    and the daemon maps only the library pages it runs itself. 27 ms of a start;
    6 MiB of the daemon's idle memory (bench/lifecycle.py). With CURVE, ZeroMQ is
    loaded already (credentials.prepare matched the key files' halves with it).
    """
    import decimal  # noqa: F401, PLC0415
    import hashlib  # noqa: F401, PLC0415
    import unicodedata  # noqa: F401, PLC0415

    import zmq  # noqa: F401, PLC0415

    with contextlib.suppress(ImportError):  # a Python built without OpenSSL: the daemon runs without ssl
        import ssl  # noqa: F401, PLC0415


def _check_database_file(loaded: settings.Settings) -> None:
    """``SettingsError`` when the daemon could not open or make its SQLite file (exit 6, not a failed start).

    Its directory is made as the DB writer makes it (private), and the file opened
    (made empty when missing, as the daemon's umask makes it: SQLite makes an empty
    file a database). Another database is reached only by the daemon.
    """
    from nua.model import sqlite_check  # noqa: PLC0415 - the standard library's sqlite3, before forking

    if sqlite_check.checkable(loaded.db):
        path = sqlite_check.sqlite_path(loaded.db)
    else:
        # A URL with options or another backend: SQLAlchemy reads it (the daemon waits for its tree then).
        from nua.model import engine  # noqa: PLC0415

        path = engine.sqlite_file(loaded.db)
    if path is None:
        return
    try:
        settings.private_dir(path.parent)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~DAEMON_UMASK)
    except OSError as exc:
        msg = f"cannot open the database file {path} ([db] url): {exc.strerror or exc}"
        raise settings.SettingsError(msg) from None
    os.close(descriptor)


def _check_log_file(path: Path) -> None:
    """``SettingsError`` saying why the daemon could not write its log file ``path`` (a setting to fix, exit 6).

    Opened for appending as the daemon will, before forking: a daemon that cannot
    log must not start, and must not send the operator to a log never written. A
    file made here is made as the daemon would make it (its umask, 027: 0640).
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~DAEMON_UMASK)
    except OSError as exc:
        msg = f"cannot write the log file {path} ([server] log_file): {exc.strerror or exc}"
        raise settings.SettingsError(msg) from None
    os.close(descriptor)


def _report_start(report: Report, loaded: settings.Settings) -> int:
    match report.outcome:
        case Outcome.READY:
            # The endpoint it bound, which a tcp port 0 only the daemon knows.
            endpoint = runtime.locate(loaded.server.pid_file, loaded.zmq.bind_endpoint).endpoint
            _say(f"started (pid {report.pid}, endpoint {endpoint}, log {loaded.server.log_file})")
            return EXIT_OK
        case Outcome.RUNNING:
            _say(f"already running (pid {report.pid})")
            return EXIT_OK
        case _:
            # The daemon reports, then cleans up (its pid file among others): answer only
            # once it is gone, so that nothing of it remains when `start` says it failed.
            if report.pid is not None:
                wait_gone(report.pid, loaded.server.stop_timeout_s)
            log_file = Path(loaded.server.log_file)
            see = f". See the log: {log_file}" if log_file.is_file() and log_file.stat().st_size else ""
            _complain(f"failed to start: {report.reason}{see}")
            return EXIT_FAILED


# -- stop ------------------------------------------------------------------------------


def _pid_file_of(config: str | Path | None) -> tuple[settings.Settings, Path, pidfile.PidFileState] | None:
    """The settings (not their deep rules), the pid file they name and its state; ``None`` (said why) if wrong."""
    loaded = _load(config, deep=False)
    if loaded is None:
        return None
    path = Path(loaded.server.pid_file)
    return loaded, path, pidfile.inspect(path)


def stop(config: str | Path | None = None) -> int:
    """Stop the daemon gracefully, forcefully if it will not; return when it is gone."""
    found_file = _pid_file_of(config)
    if found_file is None:
        return EXIT_NOT_CONFIGURED
    loaded, path, state = found_file
    if not state.locked:
        if state.exists and pidfile.remove_stale(path):
            _say(f"not running (removed a stale pid file naming pid {state.pid})")
        else:
            _say("not running")
        return EXIT_OK
    pid = _holder(state, path)
    if pid is None:
        return EXIT_FAILED
    found = runtime.locate(path, loaded.zmq.bind_endpoint, state)
    if found.problem is not None:
        _complain(f"warning: {found.problem}; using the settings' endpoint {found.endpoint}")
    if not _stop_process(pid, loaded.server.stop_timeout_s):
        _complain(f"pid {pid} survived SIGKILL")
        return EXIT_FAILED
    _clean_after(found.endpoint, path, pid)
    if not _wait_endpoint_free(found.endpoint, KILL_WAIT_S):
        _complain(f"stopped pid {pid}, but {found.endpoint} is still in use by another process")
        return EXIT_FAILED
    _say(f"stopped (pid {pid})")
    return EXIT_OK


def reload(config: str | Path | None = None) -> int:
    """Send the running daemon ``SIGHUP``: it re-opens its log file and re-reads its settings file.

    Returns once the signal is sent (the daemon's log says what applied); 7 when no daemon runs.
    """
    found_file = _pid_file_of(config)
    if found_file is None:
        return EXIT_NOT_CONFIGURED
    _, path, state = found_file
    if not state.locked:
        _complain(f"not running (no daemon holds {path}): nothing to reload")
        return EXIT_NOT_RUNNING
    pid = _holder(state, path)
    if pid is None:
        return EXIT_FAILED
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        _complain(f"pid {pid} ended before the reload: nothing to reload")
        return EXIT_NOT_RUNNING
    _say(f"reload requested (pid {pid}): it re-opens its log file and re-reads its settings; its log says what applied")
    return EXIT_OK


def _holder(state: pidfile.PidFileState, path: Path) -> int | None:
    """The pid to signal: the one in the locked file, if that process holds the file open."""
    if state.pid is None:
        _complain(f"a process holds the lock of {path} but the file names no pid; stop it by hand")
        return None
    if pidfile.opened_by(state.pid, path) is False:
        # Never signal a process that is not the lock holder: the pid may belong
        # to another pid namespace, or the file was tampered with.
        _complain(f"pid {state.pid} named in {path} does not hold it; not signalling it. Stop the daemon by hand")
        return None
    return state.pid


def _stop_process(pid: int, timeout_s: float) -> bool:
    """SIGTERM, wait; SIGTERM again (the daemon stops waiting for its actors), wait; SIGKILL."""
    for signum, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGTERM, timeout_s / 2), (signal.SIGKILL, KILL_WAIT_S)):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return True
        if wait_gone(pid, wait_s):
            return True
        _complain(f"pid {pid} still running {wait_s:.1f} s after {signum.name}")
    return False


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until process ``pid`` has exited (not merely been signalled); ``True`` if it has."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:  # no pidfd (old kernel): psutil polls instead
        import psutil  # noqa: PLC0415 - only here: `start`, the daemon, need none of it

        try:
            psutil.Process(pid).wait(timeout_s)
        except psutil.NoSuchProcess:
            return True
        except psutil.TimeoutExpired:
            return False
        return True
    try:
        # A pidfd becomes readable when the process exits: no polling.
        readable, _, _ = select.select([pidfd], [], [], timeout_s)
        return bool(readable)
    finally:
        os.close(pidfd)


def _clean_after(endpoint: str, path: Path, pid: int) -> None:
    """Remove what a killed daemon ``pid`` could not: its pid file, record and socket file, if no one owns them."""
    pidfile.remove_stale(path)
    with contextlib.suppress(OSError):  # left behind, it is not trusted anyway (its pid holds no lock)
        runtime.remove_if_pid(runtime.record_path(path), pid)
    socket_file = ipc_path(endpoint)
    if socket_file is not None and socket_file.is_socket() and is_free(endpoint):
        with contextlib.suppress(FileNotFoundError):
            socket_file.unlink()


def _wait_endpoint_free(endpoint: str, timeout_s: float) -> bool:
    # The kernel closes a dead process's sockets before its pidfd turns
    # readable, so this normally succeeds at once; it only waits (briefly,
    # bounded) for another process that took the endpoint meanwhile.
    deadline = time.monotonic() + timeout_s
    while not is_free(endpoint):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- restart ---------------------------------------------------------------------------


def restart(config: str | Path | None = None) -> int:
    """Stop the daemon, wait until its process is gone, then start a new one."""
    code = stop(config)
    if code != EXIT_OK:
        return code
    return start(config)


# -- status ----------------------------------------------------------------------------


def status(config: str | Path | None = None) -> dict[str, Any]:
    """The daemon's state as a dict; ``code`` is the LSB status exit code.

    ``state`` is ``running``, ``degraded`` (running, but some component cannot do
    all of its work: ``degraded`` lists component, reason and since), ``dead`` (a
    pid file is left but no process holds its lock), ``stopped`` or ``unknown``.
    When running, the daemon's own account (``sys_status``: pid, uptime, endpoint,
    database URL, log file, method count, actor tree) is merged in; it is asked
    with a short timeout so that a stuck daemon cannot make this hang. A degraded
    daemon's ``code`` is still 0 (LSB: it runs).

    The daemon is reached through its runtime record when there is one to trust
    (``record``; ``endpoint`` is then the one it bound), else through the settings
    (``settings_endpoint``). ``disagreement`` says in one line how the daemon's
    own settings differ from these; ``record_warning`` why a record was not used.
    """
    try:
        loaded = settings.load(config, deep=False)
    except settings.SettingsError as exc:
        return {"code": STATUS_UNKNOWN, "state": "unknown", "running": False, "message": str(exc)}
    path = Path(loaded.server.pid_file)
    base: dict[str, Any] = {
        "pid_file": str(path),
        "endpoint": loaded.zmq.bind_endpoint,
        "settings_endpoint": loaded.zmq.bind_endpoint,
        "log_file": loaded.server.log_file,
        "record": None,
        "disagreement": None,
    }
    try:
        state = pidfile.inspect(path)
    except OSError as exc:
        return {**base, "code": STATUS_UNKNOWN, "state": "unknown", "running": False, "message": str(exc)}
    found = runtime.locate(path, loaded.zmq.bind_endpoint, state)
    base["endpoint"] = found.endpoint
    if found.problem is not None:
        base["record_warning"] = found.problem
    if found.record is not None:
        base["record"] = found.record.as_dict()
        base["disagreement"] = disagreement(found.record, loaded)
        base["http"] = found.record.http  # the console's URL, when it serves one
    if state.locked:
        if state.pid is None or pidfile.opened_by(state.pid, path) is False:
            message = f"a process holds the lock of {path}, but not the pid it names ({state.pid})"
            return {**base, "code": STATUS_UNKNOWN, "state": "unknown", "running": True, "pid": state.pid,
                    "message": message}  # fmt: skip
        return {**base, **_running_status(loaded, state.pid, found)}
    if state.exists:
        message = f"not running, but {path} is left (pid {state.pid})"
        return {**base, "code": STATUS_DEAD_PID_FILE, "state": "dead", "running": False, "pid": state.pid,
                "message": message}  # fmt: skip
    return {**base, "code": STATUS_NOT_RUNNING, "state": "stopped", "running": False, "message": "not running"}


def disagreement(record: runtime.Record, loaded: settings.Settings) -> str | None:
    """One line saying how the running daemon's settings differ from ``loaded``, ``None`` if they agree."""
    differences = []
    if record.settings_endpoint != loaded.zmq.bind_endpoint:
        bound = f" (bound {record.endpoint})" if record.endpoint not in {None, record.settings_endpoint} else ""
        differences.append(
            f"it was started with endpoint {record.settings_endpoint}{bound}, these settings say"
            f" {loaded.zmq.bind_endpoint}"
        )
    mine = str(loaded.config_file) if loaded.config_file is not None else None
    if record.config_file != mine:
        started_with = record.config_file or "(none)"
        differences.append(f"it was started with config file {started_with}, these say {mine or '(none)'}")
    if not differences:
        return None
    return "the daemon's settings differ from these: " + "; ".join(differences) + " (a restart applies these)"


def _running_status(loaded: settings.Settings, pid: int | None, found: runtime.Located) -> dict[str, Any]:
    info: dict[str, Any] = {"pid": pid, "uptime_s": _uptime(pid), "running": True}
    rpc_disabled = found.record.endpoint is None if found.record is not None else not loaded.server.start_zmq_server
    if rpc_disabled:
        message = f"running (pid {pid}); RPC is disabled ([server] start_zmq_server = false)"
        return {**info, "code": STATUS_RUNNING, "state": "running", "message": message}
    starting = found.record is not None and not found.record.serving
    timeout_s = STARTING_RPC_TIMEOUT_S if starting else STATUS_RPC_TIMEOUT_S
    try:
        reply = query(found.endpoint, "sys_status", timeout_s=timeout_s, keys=keys_for(loaded, found))
    except QueryError as exc:
        source = "its runtime record" if found.record is not None else "the settings (no runtime record to trust)"
        holds = "is starting its actor tree" if starting else "holds the lock"
        message = f"pid {pid} {holds} but {exc.reason} on {found.endpoint}, the endpoint from {source}"
        return {**info, "code": STATUS_UNKNOWN, "state": "unknown", "message": message}
    info.update(reply if isinstance(reply, dict) else {"sys_status": reply})
    degraded = info.get("degraded") or []
    if degraded:
        reasons = "; ".join(f"{item.get('component')}: {item.get('reason')}" for item in degraded)
        message = f"running (pid {info['pid']}) but degraded: {reasons}"
        return {**info, "code": STATUS_RUNNING, "state": "degraded", "message": message}
    return {**info, "code": STATUS_RUNNING, "state": "running", "message": f"running (pid {info['pid']})"}


def _uptime(pid: int | None) -> float | None:
    if pid is None:
        return None
    import psutil  # noqa: PLC0415 - as in wait_gone

    try:
        return round(time.time() - psutil.Process(pid).create_time(), 3)
    except psutil.Error:
        return None


class QueryError(RuntimeError):
    """The daemon did not answer a JSON-RPC call in time, or answered with an error.

    ``reason`` says what happened without the client's advice to start a daemon,
    which would contradict a caller that knows one runs.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Keys(NamedTuple):
    """The daemon's CURVE public key and this account's key pair, or a reason they cannot be used."""

    server_key: str | None
    client_key: tuple[str, str] | None
    problem: str | None = None


def keys_for(loaded: settings.Settings, found: runtime.Located) -> Keys:
    """How to authenticate to the daemon ``found``: its record's public key and ``[zmq] client_key``'s pair.

    No key in the record (``auth = "none"``, or no record): no CURVE.
    """
    server_key = found.record.server_key if found.record is not None else None
    if server_key is None:
        return Keys(None, None)
    path = Path(loaded.zmq.client_key)
    try:
        return Keys(server_key, curve_keys.read(path))
    except FileNotFoundError:
        return Keys(server_key, None, f"no client key at {path} ([zmq] client_key)")
    except curve_keys.KeyFileError as exc:
        return Keys(server_key, None, str(exc))


def query(endpoint: str, method: str, *params: Any, timeout_s: float, keys: Keys | None = None) -> Any:
    """One JSON-RPC call that never waits past ``timeout_s``, authenticated with ``keys`` when they have a server key.

    The RPC client is imported here so that the commands that do not need it
    (``start``, ``stop``) do not load ZeroMQ.
    """
    from nua.rpc.client import Client, DaemonUnreachableError, ProtocolError  # noqa: PLC0415
    from nua.rpc.errors import RpcError  # noqa: PLC0415

    keys = keys or Keys(None, None)
    if keys.problem is not None:
        raise QueryError(keys.problem, f"cannot be authenticated to ({keys.problem})")
    try:
        with Client(endpoint, timeout=timeout_s, server_key=keys.server_key, client_key=keys.client_key) as client:
            return client.call(method, *params)
    except DaemonUnreachableError as exc:
        raise QueryError(str(exc), f"does not answer within {timeout_s:g} s") from exc
    except (ProtocolError, RpcError) as exc:
        raise QueryError(str(exc), f"answers {method} with an error ({exc})") from exc
