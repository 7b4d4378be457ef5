"""inotify on a file's directory: its changes are reported, its neighbours' are not, a removed directory comes back."""

from __future__ import annotations

import select
from collections.abc import Iterator
from pathlib import Path

import pytest

from nua.actors.file_watch import CONTENT, IDENTITY, FileWatch


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, FileWatch]]:
    directory = tmp_path / "run"
    directory.mkdir()
    path = directory / "nua.pid"
    watch = FileWatch([path], CONTENT)
    yield path, watch
    watch.close()


def readable(watch: FileWatch) -> bool:
    # inotify queues an event before the system call that caused it returns: no wait is needed.
    return bool(select.select([watch], [], [], 0)[0])


def test_nothing_to_read_until_something_happens(watched: tuple[Path, FileWatch]) -> None:
    _, watch = watched
    assert not readable(watch)
    assert watch.changed() is False
    assert watch.complete


def test_the_file_created_written_replaced_and_removed_is_reported(watched: tuple[Path, FileWatch]) -> None:
    path, watch = watched
    path.write_text("1\n")
    assert readable(watch)
    assert watch.changed() is True
    assert not readable(watch), "every pending event was read"
    path.write_text("2\n")
    assert watch.changed() is True
    other = path.with_name("other")
    other.write_text("3\n")
    other.replace(path)
    assert watch.changed() is True
    path.unlink()
    assert watch.changed() is True


def test_a_neighbour_in_the_same_directory_is_not_reported(watched: tuple[Path, FileWatch]) -> None:
    path, watch = watched
    neighbour = path.with_name("nua.runtime.json")
    neighbour.write_text("{}")
    neighbour.unlink()
    assert readable(watch)  # the directory's events arrive...
    assert watch.changed() is False  # ...and are not about the file


def test_an_identity_watch_ignores_writes(tmp_path: Path) -> None:
    path = tmp_path / "nua.db"
    path.write_bytes(b"")
    watch = FileWatch([path], IDENTITY)
    try:
        path.write_bytes(b"more")
        assert watch.changed() is False
        path.unlink()
        assert watch.changed() is True
    finally:
        watch.close()


def test_a_removed_directory_is_reported_then_watched_again_once_back(watched: tuple[Path, FileWatch]) -> None:
    path, watch = watched
    path.parent.rmdir()
    assert watch.changed() is True
    assert not watch.complete
    path.parent.mkdir()
    assert watch.changed() is True  # watched again: a look is due, the file may have come back with it
    assert watch.complete
    path.write_text("1\n")
    assert watch.changed() is True


def test_a_directory_that_does_not_exist_yet_leaves_the_watch_incomplete(tmp_path: Path) -> None:
    watch = FileWatch([tmp_path / "later" / "nua.exit"], CONTENT)
    try:
        assert not watch.complete
        (tmp_path / "later").mkdir()
        assert watch.changed() is True
        assert watch.complete
    finally:
        watch.close()
