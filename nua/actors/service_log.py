"""A service's output file, ``{log_dir}/services/NAME.log``, rotated by size at line boundaries.

Written by the process loop's thread only (:mod:`nua.actors.process_loop`), as the
bytes arrive: nothing is buffered, so a line without an end costs no memory, and
nothing is lost or written twice across a rotation. A rotation happens only at a
line boundary: the file that would pass ``max_bytes`` with the next line is renamed
``NAME.log.1`` (older ones shift up to ``NAME.log.{backups}``, the oldest is
removed) and the line starts the new file. A single line longer than ``max_bytes``
stays whole in one file. :meth:`ServiceLog.reopen` is for an external logrotate
that moved the file away; a removed directory is made again.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

FILE_MODE = 0o640


class ServiceLog:
    """Appends a service's output to its file; see the module's doc for rotation."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._fd = -1
        self._size = 0
        self._at_line_start = True
        # The last write error, reported once until a write succeeds again.
        self.error: str | None = None
        self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        self._size = os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def reopen(self) -> None:
        """Close and open ``NAME.log`` again (after logrotate moved it away)."""
        self.close()
        self._open()

    def write(self, data: bytes) -> None:
        """Append ``data``, rotating first whenever a line that starts a file would overflow it."""
        start, view = 0, memoryview(data)
        while start < len(data):
            room = max(self.max_bytes - self._size, 0)
            if len(data) - start <= room:
                self._put(view[start:])
                return
            cut = data.rfind(b"\n", start, start + room) + 1 if room else 0
            if cut:  # whole lines fit: write them, then rotate
                self._put(view[start:cut])
                start = cut
                self._rotate()
            elif self._at_line_start and self._size > 0:
                self._rotate()  # the next line starts a new file
            else:  # a line longer than a file, or the rest of a line begun here: keep it in one file
                end = data.find(b"\n", start) + 1 or len(data)
                self._put(view[start:end])
                start = end

    def _put(self, chunk: memoryview) -> None:
        if not chunk:
            return
        try:
            written = 0
            while written < len(chunk):
                written += os.write(self._fd, chunk[written:])
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror}"
            return
        self.error = None
        self._size += len(chunk)
        self._at_line_start = chunk[-1] == ord("\n")

    def _rotate(self) -> None:
        self.close()
        try:
            if self.backups == 0:
                self.path.unlink(missing_ok=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    self._backup(self.backups).unlink()
                for number in range(self.backups - 1, 0, -1):
                    with contextlib.suppress(FileNotFoundError):
                        self._backup(number).rename(self._backup(number + 1))
                self.path.rename(self._backup(1))
        except OSError as exc:
            self.error = f"{self.path}: cannot rotate: {exc.strerror}"
        self._open()

    def _backup(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{number}")


def tail(path: Path, lines: int, backups: int, max_bytes: int = 1024 * 1024) -> list[str]:
    """The last ``lines`` lines of ``path`` and its backups (newest last), reading at most ``max_bytes``."""
    chunks: list[bytes] = []
    read = 0
    newlines = 0
    for candidate in [path, *(path.with_name(f"{path.name}.{n}") for n in range(1, backups + 1))]:
        try:
            with candidate.open("rb") as file:
                size = file.seek(0, os.SEEK_END)
                take = min(size, max_bytes - read)
                file.seek(size - take)
                data = file.read(take)
        except FileNotFoundError:
            break
        chunks.insert(0, data)
        read += len(data)
        newlines += data.count(b"\n")
        if newlines > lines or read >= max_bytes:
            break
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return text.splitlines()[-lines:] if lines > 0 else []


def follow(path: Path, cursor: Any, max_bytes: int = 256 * 1024) -> tuple[list[str], dict[str, int]]:
    """The whole lines written to ``path`` since ``cursor``, and the cursor to pass next time.

    A cursor is ``{"inode": n, "offset": n}``: where the reader stopped, in which
    file. When ``path`` has been rotated since, the rest of the old file (now
    ``NAME.log.1``, found by its inode) comes first, then the new file from its
    start: ``tail -F`` across a rotation, without losing the old file's last
    lines. ``cursor=None`` gives no lines and the cursor of the file's end.
    Raises :class:`ValueError` for a cursor that is not one.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return [], cursor if _valid(cursor) else {"inode": 0, "offset": 0}
    if cursor is None:
        return [], {"inode": info.st_ino, "offset": info.st_size}
    if not _valid(cursor):
        msg = "must be the cursor of a previous reply ({'inode': int, 'offset': int})"
        raise ValueError(msg)
    lines: list[str] = []
    offset = int(cursor["offset"])
    if cursor["inode"] != info.st_ino:
        rotated = path.with_name(f"{path.name}.1")
        with contextlib.suppress(FileNotFoundError):
            if rotated.stat().st_ino == cursor["inode"]:
                lines, _ = _read_lines(rotated, offset, max_bytes, whole_file=True)
        offset = 0
    more, offset = _read_lines(path, offset, max_bytes - sum(len(line) + 1 for line in lines), whole_file=False)
    return lines + more, {"inode": info.st_ino, "offset": offset}


def _valid(cursor: Any) -> bool:
    return (
        isinstance(cursor, dict)
        and set(cursor) == {"inode", "offset"}
        and all(isinstance(cursor[k], int) and not isinstance(cursor[k], bool) and cursor[k] >= 0 for k in cursor)
    )


def _read_lines(path: Path, offset: int, max_bytes: int, *, whole_file: bool) -> tuple[list[str], int]:
    """The lines from ``offset`` (at most ``max_bytes``), and the offset after the last whole one.

    ``whole_file``: a file that no longer grows (rotated away): its unfinished last line counts too.
    """
    with path.open("rb") as file:
        file.seek(offset)
        data = file.read(max(max_bytes, 0))
    end = len(data) if whole_file else data.rfind(b"\n") + 1
    if end == 0 and len(data) >= max_bytes > 0:
        end = len(data)  # one line longer than a reply: shown in pieces rather than never
    text = data[:end].decode("utf-8", errors="replace")
    return text.splitlines(), offset + end
