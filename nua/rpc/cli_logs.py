"""``nua logs``: the daemon's own log file, its last lines and (``-f``) what follows, as ``tail -F``.

The file is the one the running daemon writes, named in its runtime record
(:mod:`nua.runtime`): a daemon started with other settings is still found. A
daemon in the foreground writes no file (it logs to its console, a terminal or
the journal): ``nua logs`` says so in one line. Without a running daemon, the
file the settings name is read (why did it stop?).

Reading never changes the file. Following survives a rotation: when the name
points to another file (logrotate moved it away and the daemon re-opened the
name on ``SIGHUP`` or ``nua-orchestrator reload``), the rest of the old file is
printed, then the new one from its start; a file truncated in place is read
again from its start. Only whole lines are printed.

Runs on the daemon's host, as its account (the log's directory is 0700); talks
to no daemon.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TextIO

from nua import client_settings, runtime

HELP = "show the daemon's log file, -f to follow it across rotations"
# Lines -n may ask for.
MAX_LINES = 100_000
# How often -f looks for more (as tail -F does: a log is read by people).
FOLLOW_INTERVAL_S = 0.25
# Bytes read at a time: from the end for the last lines, and while following.
BLOCK = 65536

Places = Callable[[argparse.Namespace], client_settings.Places]


class LogsError(Exception):
    """The log cannot be shown (one line saying why and what to do); exit 1."""


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_LINES:
        msg = f"takes a number of lines from 0 to {MAX_LINES}, not {text[:40]!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def add_parser(top: Any, common: argparse.ArgumentParser, *, places: Places) -> None:
    """Add ``logs`` to ``top``; ``places`` finds the pid file and endpoint the settings name."""
    logs: argparse.ArgumentParser = top.add_parser("logs", help=HELP, parents=[common], description=HELP)

    def run_here(_client: Any, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
        return run(args, places)

    logs.set_defaults(run=run_here, local=True)
    logs.add_argument("-n", dest="lines", type=_count, default=20, metavar="N", help="lines to show (default 20)")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="then print what is written, across rotations (Ctrl-C ends)"
    )


def log_file(args: argparse.Namespace, places: Places) -> Path:
    """The daemon's log file: from its runtime record when it runs, else from the settings."""
    place = places(args)
    found = runtime.locate(place.pid_file, place.endpoint)
    record = found.record
    if record is not None:
        if record.log_file is None:
            msg = (
                f"the daemon (pid {record.pid}) runs in the foreground: it logs to its console"
                " (its terminal, or the journal under systemd), not to a file"
            )
            raise LogsError(msg)
        return Path(record.log_file)
    from nua import settings  # noqa: PLC0415 - only without a running daemon to say where

    try:
        loaded = settings.load(args.config, deep=False)
    except settings.SettingsError as exc:
        raise LogsError(str(exc)) from None
    return Path(loaded.server.log_file)


def last_lines(file: BinaryIO, count: int) -> tuple[list[str], int]:
    """The last ``count`` whole lines of the open ``file``, and the offset where they end."""
    end = os.fstat(file.fileno()).st_size
    data = b""
    start = end
    # Read back a block at a time until the block holds count + 1 line ends (or the file's start).
    while start > 0 and data.count(b"\n") <= count:
        start = max(0, start - BLOCK)
        file.seek(start)
        data = file.read(end - start)
    whole, _, _ = data.rpartition(b"\n")  # a last line still being written is left for -f
    shown = whole.split(b"\n")[-count:] if count and whole else []
    return [line.decode("utf-8", errors="replace") for line in shown], start + len(whole) + (1 if whole else 0)


class _Follow(NamedTuple):
    write: Callable[[str], None]
    sleep: Callable[[float], None]


def follow(path: Path, file: BinaryIO, offset: int, out: _Follow) -> None:
    """Print the whole lines written to ``file`` (open, at ``path``) from ``offset`` on, across rotations.

    Runs until interrupted; closes the files it opened, ``file`` included.
    """
    try:
        file.seek(offset)
        pending = b""
        while True:
            chunk = file.read(BLOCK)
            if chunk:
                pending = _write_lines(pending + chunk, out.write)
                continue
            replaced = _replaced(path, file)
            if replaced is not None:
                file.close()
                file, pending = replaced, b""  # the old file's last partial line is not a line
                continue
            if file.tell() > os.fstat(file.fileno()).st_size:  # truncated in place (copytruncate)
                file.seek(0)
                pending = b""
            out.sleep(FOLLOW_INTERVAL_S)
    finally:
        file.close()


def _write_lines(data: bytes, write: Callable[[str], None]) -> bytes:
    """Write the whole lines of ``data``; return the partial line left at its end."""
    whole, _, rest = data.rpartition(b"\n")
    if whole or data.startswith(b"\n"):
        write(whole.decode("utf-8", errors="replace") + "\n")
    return rest


def _replaced(path: Path, file: Any) -> Any:
    """The file now at ``path`` when it is not ``file`` (opened), else ``None`` (also when there is none yet)."""
    try:
        now = path.stat()
    except FileNotFoundError:
        return None  # moved away, not yet re-opened by the daemon: wait for the new one
    held = os.fstat(file.fileno())
    if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
        return None
    try:
        return path.open("rb")
    except FileNotFoundError:
        return None


def run(args: argparse.Namespace, places: Places) -> tuple[Any, Callable[[Any], str]]:
    """``nua logs``: the last lines, then with ``-f`` what follows (printed as it comes)."""
    path = log_file(args, places)
    try:
        # Held from here on: a rotation between the last lines and the follow loses nothing.
        file = path.open("rb")
    except FileNotFoundError:
        msg = f"no log file at {path}: the daemon has not written one (never started with these settings?)"
        raise LogsError(msg) from None
    except OSError as exc:
        msg = f"cannot read the log file {path}: {exc.strerror or exc}"
        raise LogsError(msg) from None
    try:
        lines, offset = last_lines(file, args.lines)
    except BaseException:
        file.close()
        raise
    if not args.follow:
        file.close()
        return lines, "\n".join
    write = sys.stdout.write
    if lines:
        write("\n".join(lines) + "\n")
    sys.stdout.flush()

    def write_now(text: str) -> None:
        write(text)
        sys.stdout.flush()

    follow(path, file, offset, _Follow(write_now, time.sleep))
    return None, str  # following ends only when interrupted


__all__ = ["LogsError", "add_parser", "follow", "last_lines", "log_file", "run"]
