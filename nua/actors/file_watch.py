"""Linux inotify on the directories of a few named files: a descriptor that becomes readable when one changes.

What the sentinel (the pid file, the exit flag) and the DB writer (the SQLite
file) used to look at four times a second: with a watch, a change wakes them at
once and nothing wakes them otherwise. Each file's *directory* is watched, for
events naming the file, so that a file deleted and created again, or replaced by
a rename, is still seen (a watch on the file itself would follow the old inode).

What inotify cannot see: a directory above the watched one renamed or replaced,
or a change made by another host on a network file system. The callers keep a
slow look for those (:mod:`nua.actors.ticker`), and a fast one while the watch is
:attr:`FileWatch.complete` no more (a watched directory was removed and has not
come back; each :meth:`FileWatch.changed` tries to watch it again).

Through ``ctypes`` on the C library's own ``inotify_*`` functions: the standard
library has no binding, and the daemon has ``ctypes`` loaded already.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000

# A file that comes, goes or is replaced.
IDENTITY = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
# ... or whose content or owner changes.
CONTENT = IDENTITY | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB
# The watched directory itself went (its watch is gone), or events were lost.
_LOST = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED | IN_Q_OVERFLOW
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


class FileWatch:
    """Watches ``paths`` (by their directories) for ``mask``'s events; :meth:`fileno` for ``select``.

    Raises :class:`OSError` when inotify cannot be had at all (not Linux, the
    instance limit reached, out of descriptors): the caller looks by time instead.
    """

    def __init__(self, paths: Iterable[Path], mask: int) -> None:
        try:
            libc = _libc()
            self._add_watch = libc.inotify_add_watch
            self._rm_watch = libc.inotify_rm_watch
            init = libc.inotify_init1
        except (OSError, AttributeError) as exc:
            raise OSError(errno.ENOSYS, f"no inotify here ({exc})") from None
        self._mask = mask
        self._names: dict[Path, set[str]] = {}
        for path in paths:
            self._names.setdefault(path.parent, set()).add(path.name)
        self._fd = int(init(os.O_NONBLOCK | os.O_CLOEXEC))
        if self._fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        self._watches: dict[int, Path] = {}
        self._add_missing()

    @property
    def complete(self) -> bool:
        """Whether every directory is watched (one removed and not back yet is not)."""
        return len(self._watches) == len(self._names)

    def fileno(self) -> int:
        return self._fd

    def changed(self) -> bool:
        """Read the pending events; whether one concerns a watched file, or a watch was lost or added again."""
        found = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset + _HEADER.size <= len(data):
                wd, mask, _, length = _HEADER.unpack_from(data, offset)
                name = data[offset + _HEADER.size : offset + _HEADER.size + length].rstrip(b"\0")
                offset += _HEADER.size + length
                if mask & _LOST:
                    found = True
                    if mask & IN_MOVE_SELF:  # it watches the moved directory: let it go
                        self._rm_watch(self._fd, wd)
                    if mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT):
                        self._watches.pop(wd, None)
                    continue
                directory = self._watches.get(wd)
                if directory is not None and os.fsdecode(name) in self._names[directory]:
                    found = True
        return self._add_missing() or found

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _add_missing(self) -> bool:
        """Watch each directory not watched yet (it may have come back); whether one was added."""
        watched = set(self._watches.values())
        added = False
        for directory in self._names:
            if directory in watched:
                continue
            wd = self._add_watch(self._fd, os.fsencode(directory), self._mask | _LOST | IN_ONLYDIR)
            if wd >= 0:
                self._watches[wd] = directory
                added = True
        return added


def watch_or_none(paths: Iterable[Path], mask: int, log: Any, interval_s: float) -> FileWatch | None:
    """A :class:`FileWatch` on ``paths``, or ``None`` when inotify cannot be had (logged once, with why).

    ``interval_s``: how often the caller will look instead, said in the log line.
    """
    try:
        return FileWatch(paths, mask)
    except OSError as exc:
        log.warning("file_watch_unavailable", error=str(exc), interval_s=interval_s)
        return None
