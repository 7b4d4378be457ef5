"""The pid file and the lock that decides whether a daemon runs.

The file holds the daemon's pid and is kept under an exclusive ``flock`` for the
daemon's whole life. The lock, not the file's existence, says whether a daemon
runs: the kernel drops it when the process dies, even after ``kill -9``, so a file
left behind is recognised as stale (whether its pid is dead or reused by another
process) and replaced without help.

``flock`` rather than POSIX ``lockf``: a POSIX lock is released when the process
closes *any* descriptor of the file, so reading the pid file (as the sentinel
does) would silently drop it.

The file is written atomically: a complete temporary file, already locked, is
linked or renamed into place, so nobody ever reads a half-written pid. It is not
fsynced: it speaks of this boot's daemon only, and after a crash of the machine
whatever is left (old, empty or whole) is held by no lock, so stale, and
replaced. (The two fsyncs, file and directory, were 6 to 8 ms of a start on ext4.) Replacing a
stale file happens while holding the lock of the file replaced, and after checking
that the path still names it, so two starters racing over the same stale file end
with exactly one winner.

This module is the holder's side; a leaf, since the daemon holds the file and the
sentinel (an actor) watches it. The read-only probe (``inspect``, ``read_pid``,
``opened_by``) lives in the leaf :mod:`nua.pidlock`, which the ``nua`` CLI and
:mod:`nua.runtime` use without this module; it is re-exported here for the holder's
callers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from nua.pidlock import PidFileState, inspect, is_locked, opened_by, parse_pid, read_pid, try_lock

TEMP_SUFFIX = ".tmp"


class AlreadyRunningError(RuntimeError):
    """Another process holds the pid file's lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        owner = f"pid {pid}" if pid is not None else "a process whose pid could not be read"
        super().__init__(f"already running ({owner}, pid file {path})")
        self.path = path
        self.pid = pid


class ForeignPidFileError(PermissionError):
    """The pid file belongs to another account than root or ours: it says nothing about our daemon.

    In a shared sticky directory (``/tmp``) any local account can create the pid
    file first and hold its lock; taken for a running daemon, it would make every
    start answer "already running" (exit 0) while no daemon runs.
    """

    def __init__(self, path: Path, owner: int) -> None:
        super().__init__(f"{path} belongs to uid {owner}, not to root or us (uid {os.geteuid()}): refusing to use it")
        self.path = path
        self.owner = owner


def check_owner(path: Path, fd: int | None = None) -> None:
    """Raise :class:`ForeignPidFileError` if ``path`` (or the open ``fd``) belongs to another account."""
    try:
        owner = (os.fstat(fd) if fd is not None else path.stat()).st_uid
    except FileNotFoundError:
        return
    if owner not in {0, os.geteuid()}:
        raise ForeignPidFileError(path, owner)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


class PidFile:
    """The daemon's pid file, locked from :meth:`acquire` until :meth:`release` or process exit."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, pid: int | None = None) -> None:
        """Write ``pid`` (ours by default) to the file and hold its lock.

        Raises :class:`AlreadyRunningError` if a live process holds the lock. A
        stale file (its owner died) is replaced.
        """
        if self._fd is not None:
            return
        pid = os.getpid() if pid is None else pid
        temp, fd = self._write_locked_temp(pid)
        try:
            self._install(temp)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        self._fd = fd

    def _write_locked_temp(self, pid: int) -> tuple[Path, int]:
        # Unique per attempt, created exclusively: racing starters never share one.
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}")
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a new inode nobody else knows: never blocks
            os.write(fd, f"{pid}\n".encode("ascii"))
        except BaseException:
            os.close(fd)
            temp.unlink()
            raise
        return temp, fd

    def _install(self, temp: Path) -> None:
        """Put the (locked) temporary file in place of the pid file."""
        while True:
            try:
                os.link(temp, self.path)  # atomic create-if-absent
            except FileExistsError:
                if self._replace_stale(temp):
                    return
                continue  # the file changed under us: look again
            temp.unlink()
            return

    def _replace_stale(self, temp: Path) -> bool:
        """Rename ``temp`` over a stale pid file; ``False`` if the path changed meanwhile."""
        try:
            old = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            check_owner(self.path, old)
            if not try_lock(old):
                if try_lock(old, shared=True):
                    # Only an inspector's brief shared lock (``status``, a
                    # starter's check): no daemon holds it. Look again.
                    fcntl.flock(old, fcntl.LOCK_UN)
                    return False
                raise AlreadyRunningError(self.path, read_pid(self.path))
            # Someone may have replaced the file between our open and our lock:
            # only the file the path still names may be replaced.
            if not _same_file(old, self.path):
                return False
            temp.rename(self.path)
            return True
        finally:
            os.close(old)

    def release(self) -> None:
        """Remove the pid file if it is still ours, then drop the lock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path) and read_pid(self.path) == os.getpid():
                self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)


def remove_stale(path: Path) -> bool:
    """Remove ``path`` if no live process holds its lock; ``True`` if it was removed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if not try_lock(fd) or not _same_file(fd, path):
            return False
        path.unlink()
        return True
    finally:
        os.close(fd)


def stale_temp_files(path: Path) -> list[Path]:
    """Temporary pid files left by a starter that died between writing and installing."""
    stale = []
    for candidate in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):  # installed or removed meanwhile
            if candidate.is_file() and not is_locked(candidate):
                stale.append(candidate)
    return stale


__all__ = [
    "AlreadyRunningError",
    "ForeignPidFileError",
    "PidFile",
    "PidFileState",
    "check_owner",
    "inspect",
    "opened_by",
    "parse_pid",
    "read_pid",
    "remove_stale",
    "stale_temp_files",
]
