"""The pid lock as everyone else sees it: whether a daemon holds a pid file, and which pid it names.

The daemon's side (taking the lock, writing the file) is :mod:`nua.pidfile`;
this is the read-only probe that ``status``, ``stop``, the ``nua`` client and the
runtime record (:mod:`nua.runtime`) share. A leaf: it imports nothing of nua, so
any layer may use it.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import NamedTuple


class PidFileState(NamedTuple):
    """What a look at the pid file found, without changing anything."""

    exists: bool
    locked: bool  # a live process holds the lock: a daemon runs
    pid: int | None  # the pid written in the file, if readable


def parse_pid(data: bytes) -> int | None:
    """The pid a pid file's content names, or ``None`` if it is not one."""
    text = data.strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


# More than any pid's digits and a newline: a pid file is read no further than this.
PID_FILE_MAX_BYTES = 32


def read_head(path: Path) -> bytes:
    """The start of the pid file ``path``, bounded: whoever rewrites it may write a lot (``OSError`` as raised)."""
    with path.open("rb") as file:
        return file.read(PID_FILE_MAX_BYTES)


def read_pid(path: Path) -> int | None:
    """The pid written in ``path``, or ``None`` if it is missing, unreadable or not a pid."""
    try:
        return parse_pid(read_head(path))
    except OSError:
        return None


def try_lock(fd: int, *, shared: bool = False) -> bool:
    """Take ``fd``'s lock without waiting; ``False`` if another open file description holds it."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES}:
            return False
        raise
    return True


def is_locked(path: Path) -> bool:
    """Whether a live process holds ``path``'s exclusive lock; ``FileNotFoundError`` if it is gone."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # A shared lock is enough to learn whether an exclusive one is held, and
        # two inspectors never block each other.
        return not try_lock(fd, shared=True)
    finally:
        os.close(fd)  # also releases our shared lock


def inspect(path: Path) -> PidFileState:
    """Whether ``path`` exists, is locked by a live daemon, and which pid it names."""
    try:
        locked = is_locked(path)
    except FileNotFoundError:
        return PidFileState(exists=False, locked=False, pid=None)
    return PidFileState(exists=True, locked=locked, pid=read_pid(path))


def opened_by(pid: int, path: Path) -> bool | None:
    """Whether process ``pid`` has ``path`` open (the lock holder does), ``None`` if we cannot tell.

    Compared by inode, not by name: the holder opened the file under a temporary
    name before linking it into place.
    """
    try:
        target = path.stat()
    except FileNotFoundError:
        return False
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except FileNotFoundError:
        return False if Path("/proc/self/fd").is_dir() else None
    except PermissionError:
        return None
    for entry in entries:
        try:
            info = entry.stat()
        except OSError:
            continue  # closed meanwhile, or not a file
        if (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False


__all__ = [
    "PID_FILE_MAX_BYTES",
    "PidFileState",
    "inspect",
    "is_locked",
    "opened_by",
    "parse_pid",
    "read_head",
    "read_pid",
    "try_lock",
]
