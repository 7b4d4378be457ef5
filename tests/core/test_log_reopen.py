"""``log.reopen``: after logrotate moved the file, or its directory was removed, lines go to a new file."""

from __future__ import annotations

import json
import logging
import shutil
import stat
from pathlib import Path

import pytest

from nua import log
from nua.settings import SettingsError


def events(path: Path) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return [json.loads(line)["event"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_moved_file_keeps_the_old_lines_and_a_new_one_gets_the_new(log_file: Path) -> None:
    log.get("test").info("before")
    rotated = log_file.with_suffix(".log.1")
    log_file.rename(rotated)
    log.get("test").info("still_old")  # until the re-open, the moved file is written
    assert log.reopen() == log_file
    log.get("test").info("after")
    assert events(rotated) == ["before", "still_old"]
    assert events(log_file) == ["after"]


def test_a_removed_directory_is_made_again_0700(log_file: Path) -> None:
    shutil.rmtree(log_file.parent)
    assert log.reopen() == log_file
    log.get("test").info("after")
    assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700
    assert events(log_file) == ["after"]


def test_a_failed_reopen_keeps_the_old_file(log_file: Path) -> None:
    shutil.rmtree(log_file.parent)
    log_file.parent.write_text("")  # a file where the directory should be
    with pytest.raises((OSError, SettingsError)):
        log.reopen()
    (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    assert not handler.stream.closed, "the old file stays in use"
    log.get("test").info("still_logged")
    log_file.parent.unlink()
    assert log.reopen() == log_file
    log.get("test").info("after")
    assert events(log_file) == ["after"]


def test_nothing_to_reopen_on_a_stream() -> None:
    log.configure("info")
    assert log.reopen() is None
