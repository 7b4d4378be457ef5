"""The runtime record: what a client needs to reach the daemon that runs, written by that daemon.

The settings say what a daemon *would* bind if it started now; a daemon started
with other settings (``NUA_ZMQ_PORT=6131``, ``port = 0``, a config file edited
since) listens elsewhere. So once it is ready, the daemon writes a small JSON file
beside its pid file (pid, start time, version, the endpoint it actually bound, the
endpoint and config file its settings named, the file it logs to: none in the
foreground), and removes it when it exits.
``status``, ``stop``, ``restart`` and ``nua`` read it first: the pid file (from the
settings, so ``--config`` still selects the daemon) names *which* daemon, the
record says *how to reach it*.

The record is outside input like any file: it is read bounded, every field is
checked, and a record that is not ours, writable by others, malformed, or left by
a daemon that no longer holds the pid lock (``kill -9``) is not trusted: the
callers fall back to the settings and say why in one line.

The record also publishes the daemon's CURVE public key (``server_key``): a local
client reads it here, from a file only the daemon's account can read, and so
knows it talks to its own daemon.

A leaf: it imports only the leaves :mod:`nua.pidlock`, :mod:`nua.endpoint` and
:mod:`nua.curve_keys`, so both CLIs and the daemon may use it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
from pathlib import Path
from typing import Any, NamedTuple

from nua import curve_keys, pidlock
from nua.endpoint import port_number, tcp_parts

RECORD_SUFFIX = ".runtime.json"
# A record is a few hundred bytes; anything past this is not one of ours.
MAX_RECORD_BYTES = 8192
# 2: with the server's CURVE public key; 3: with its log file.
FORMAT = 3
# The endpoint a client connects to must be one it can use as is.
CLIENT_SCHEMES = ("tcp://", "ipc://")
_MAX_TEXT = 4096
_MAX_VERSION = 64


# Fields an older nua's record lacks: it reads with their defaults (no HTTP server; serving).
OPTIONAL_FIELDS = frozenset({"http", "serving"})


class RecordError(ValueError):
    """A runtime record that cannot be trusted, and why (one line)."""


class Record(NamedTuple):
    """One daemon's runtime facts, as written in its record.

    A named tuple, not a dataclass: the ``nua`` CLI reads records, and importing
    :mod:`dataclasses` (with :mod:`inspect`) would cost it 8 ms of its 60.
    """

    pid: int
    started_at: float  # Unix time the daemon started
    version: str
    endpoint: str | None  # the endpoint it bound (a tcp port 0 resolved); None when RPC is disabled
    settings_endpoint: str  # the endpoint its settings named when it started
    config_file: str | None  # the settings file it started with
    server_key: str | None = None  # its CURVE public key (Z85); None without authentication
    log_file: str | None = None  # the file it logs to; None in the foreground (it logs to its console)
    http: str | None = None  # the URL its HTTP server bound (an [http] port 0 resolved); None without one
    # Whether its actor tree runs: a daemon is ready (and writes its record) before its tree
    # has started, and writes it again once it serves. A record without it (an older nua's,
    # written once serving) reads as True.
    serving: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The record's fields, for JSON output."""
        return self._asdict()


def record_path(pid_file: str | Path) -> Path:
    """Where the daemon owning ``pid_file`` keeps its record: beside it, in its private directory."""
    pid_file = Path(pid_file)
    return pid_file.with_name(pid_file.stem + RECORD_SUFFIX)


# -- writing (the daemon) ------------------------------------------------------------------------


def write(path: Path, record: Record) -> tuple[int, int]:
    """Write ``record`` to ``path`` atomically (0600); the ``(st_dev, st_ino)`` of the file written.

    A complete temporary file is renamed into place: a reader sees the old record,
    none, or the new one whole. Neither file nor directory is fsynced: the record
    speaks of this boot's daemon only, and one left by a crash of the machine is
    trusted by no one (its pid holds no lock). The fsyncs were 3 to 8 ms of a start.
    """
    data = json.dumps({"format": FORMAT, **record.as_dict()}, sort_keys=True).encode("utf-8")
    temp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask left
        os.write(fd, data)
        info = os.fstat(fd)
        temp.rename(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    finally:
        os.close(fd)
    return info.st_dev, info.st_ino


def remove(path: Path, written: tuple[int, int] | None = None) -> bool:
    """Remove the record at ``path`` (only if it is still the file ``written``, when given); whether it did."""
    try:
        if written is not None:
            info = path.lstat()
            if (info.st_dev, info.st_ino) != written:
                return False  # another daemon's record since: not ours to remove
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def remove_if_pid(path: Path, pid: int) -> bool:
    """Remove the record at ``path`` if it names ``pid`` (a daemon known gone); whether it did."""
    try:
        fd = _open(path)
    except FileNotFoundError:
        return False
    except RecordError:
        return False
    try:
        info = os.fstat(fd)
        record = _parse(_read_bounded(fd))
    except RecordError:
        return False
    finally:
        os.close(fd)
    if record.pid != pid:
        return False
    return remove(path, (info.st_dev, info.st_ino))


def leftover_temp_files(path: Path) -> list[Path]:
    """Temporary files of a record write that a killed daemon never renamed into place."""
    return sorted(path.parent.glob(f".{path.name}.*.part"))


# -- reading (the clients) -----------------------------------------------------------------------


def read(path: Path) -> Record | None:
    """The record at ``path``; ``None`` when there is none, :class:`RecordError` when it cannot be trusted."""
    try:
        fd = _open(path)
    except FileNotFoundError:
        return None
    try:
        _check_owner(os.fstat(fd))
        return _parse(_read_bounded(fd))
    finally:
        os.close(fd)


def _open(path: Path) -> int:
    # O_NOFOLLOW: a symbolic link planted in its place is refused; O_NONBLOCK: a
    # FIFO planted there cannot make the reader hang.
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        reason = "it is a symbolic link" if path.is_symlink() else f"cannot open it: {exc.strerror}"
        raise RecordError(reason) from None


def _check_owner(info: os.stat_result) -> None:
    uid = os.geteuid()
    if not stat.S_ISREG(info.st_mode):
        msg = "it is not a regular file"
        raise RecordError(msg)
    if info.st_uid != uid:
        msg = f"it belongs to uid {info.st_uid}, not to us (uid {uid})"
        raise RecordError(msg)
    if info.st_mode & 0o022:
        msg = f"it is writable by others (mode {stat.S_IMODE(info.st_mode):04o})"
        raise RecordError(msg)


def _read_bounded(fd: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_RECORD_BYTES:
        chunk = os.read(fd, MAX_RECORD_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > MAX_RECORD_BYTES:
        msg = f"it is larger than {MAX_RECORD_BYTES} bytes"
        raise RecordError(msg)
    return b"".join(chunks)


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        msg = "it repeats a key"
        raise RecordError(msg)
    return found


def _parse(data: bytes) -> Record:
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_no_repeats)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, RecordError):
            raise
        msg = "it is not valid JSON"
        raise RecordError(msg) from None
    if not isinstance(value, dict):
        msg = "it is not a JSON object"
        raise RecordError(msg)
    expected = {"format", *Record._fields}
    if not expected - OPTIONAL_FIELDS <= set(value) <= expected:  # an older record lacks some
        odd = sorted(set(value) ^ expected)
        msg = f"its keys are not a record's ({', '.join(repr(key)[:40] for key in odd[:5])})"
        raise RecordError(msg)
    if value["format"] != FORMAT or type(value["format"]) is not int:
        msg = f"unknown format {str(value['format'])[:20]!r}"
        raise RecordError(msg)
    return Record(
        pid=_pid(value["pid"]),
        started_at=_time(value["started_at"]),
        version=_text(value["version"], "version", _MAX_VERSION),
        endpoint=None if value["endpoint"] is None else client_endpoint(value["endpoint"]),
        settings_endpoint=_text(value["settings_endpoint"], "settings_endpoint", _MAX_TEXT),
        config_file=None if value["config_file"] is None else _text(value["config_file"], "config_file", _MAX_TEXT),
        server_key=_server_key(value["server_key"]),
        log_file=None if value["log_file"] is None else _text(value["log_file"], "log_file", _MAX_TEXT),
        http=_http_url(value.get("http")),
        serving=_flag(value.get("serving", True), "serving"),
    )


def _http_url(value: Any) -> str | None:
    if value is None:
        return None
    text = _text(value, "http", _MAX_TEXT)
    if not text.startswith(("http://", "https://")):
        msg = f"http is not an http:// or https:// URL ({text[:40]!r})"
        raise RecordError(msg)
    return text


def _flag(value: Any, name: str) -> bool:
    if type(value) is not bool:
        msg = f"{name} is not true or false"
        raise RecordError(msg)
    return value


def _server_key(value: Any) -> str | None:
    if value is None or curve_keys.is_key(value):
        return value  # type: ignore[no-any-return]
    msg = "server_key is not a CURVE public key (40 Z85 characters)"
    raise RecordError(msg)


def _pid(value: Any) -> int:
    if type(value) is not int or value <= 0:
        msg = "pid is not a positive integer"
        raise RecordError(msg)
    return value


def _time(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        msg = "started_at is not a time"
        raise RecordError(msg)
    return float(value)


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        msg = f"{name} is not a printable string of at most {limit} characters"
        raise RecordError(msg)
    return value


def client_endpoint(value: Any) -> str:
    """``value`` if a client can connect to it as is (``tcp://host:port`` or ``ipc://path``), else RecordError."""
    text = _text(value, "endpoint", _MAX_TEXT)
    if not text.startswith(CLIENT_SCHEMES):
        msg = f"endpoint is neither tcp:// nor ipc:// ({text[:40]!r})"
        raise RecordError(msg)
    parts = tcp_parts(text)
    if parts is not None:
        host, port = parts[0], port_number(parts[1])
        if not host or not port:
            msg = f"endpoint has no usable host and port ({text[:40]!r})"
            raise RecordError(msg)
    elif len(text) == len("ipc://"):
        msg = "endpoint names no socket file"
        raise RecordError(msg)
    return text


# -- finding the daemon --------------------------------------------------------------------------


class Located(NamedTuple):
    """Where to reach the daemon owning a pid file, and what that was decided from."""

    endpoint: str  # the live record's endpoint, else the settings'
    record: Record | None  # the record, when it is trusted and its daemon holds the pid lock
    problem: str | None  # why a record that is there was not used (one line), if one was not


def locate(pid_file: str | Path, settings_endpoint: str, state: pidlock.PidFileState | None = None) -> Located:
    """Find the daemon owning ``pid_file`` through its record, else through ``settings_endpoint``.

    The record is trusted only if it is well formed, ours, and its pid holds the
    pid lock now (``state``, looked up when not given): one left by a killed
    daemon names a pid that does not.
    """
    pid_file = Path(pid_file)
    path = record_path(pid_file)
    try:
        record = read(path)
    except RecordError as exc:
        return Located(settings_endpoint, None, f"ignoring the runtime record {path}: {exc}")
    if record is None:
        return Located(settings_endpoint, None, None)
    if state is None:
        try:
            state = pidlock.inspect(pid_file)
        except OSError as exc:
            return Located(settings_endpoint, None, f"cannot check the pid lock of {pid_file}: {exc}")
    if not (state.locked and state.pid == record.pid):
        problem = f"ignoring the stale runtime record {path}: pid {record.pid} does not hold the lock of {pid_file}"
        return Located(settings_endpoint, None, problem)
    if record.endpoint is None:  # RPC disabled in that daemon: there is nothing better to offer
        return Located(settings_endpoint, record, None)
    return Located(record.endpoint, record, None)


__all__ = [
    "FORMAT",
    "MAX_RECORD_BYTES",
    "RECORD_SUFFIX",
    "Located",
    "Record",
    "RecordError",
    "client_endpoint",
    "leftover_temp_files",
    "locate",
    "read",
    "record_path",
    "remove",
    "remove_if_pid",
    "write",
]
