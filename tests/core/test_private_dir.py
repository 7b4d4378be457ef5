"""``settings.private_dir``: creates only its own directories (0700), never tightens others, refuses unsafe ones."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from nua import settings
from nua.settings import SettingsError

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def make(path: Path, perms: int) -> Path:
    path.mkdir()
    path.chmod(perms)  # explicit: mkdir's mode goes through the umask
    return path


@pytest.fixture(params=[0o000, 0o022, 0o077, 0o700])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_missing_directories_are_created_0700_parents_included_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    made = settings.private_dir(tmp_path / "a" / "b" / "nua")
    assert made == tmp_path / "a" / "b" / "nua"
    for directory in (tmp_path / "a", tmp_path / "a" / "b", made):
        assert mode(directory) == 0o700, (oct(umask), directory)


def test_a_sticky_shared_parent_is_used_and_left_as_it_is(tmp_path: Path) -> None:
    shared = make(tmp_path / "tmp", 0o1777)  # stands in for /tmp
    made = settings.private_dir(shared / "nua")
    assert mode(made) == 0o700
    assert mode(shared) == 0o1777
    # The shared directory itself as the place (pid_file = "/tmp/nua.pid"): accepted, never chmodded.
    assert settings.private_dir(shared) == shared
    assert mode(shared) == 0o1777


def test_an_existing_directory_of_ours_is_never_tightened(tmp_path: Path) -> None:
    mine = make(tmp_path / "run", 0o755)
    settings.private_dir(mine)
    settings.private_dir(mine / "sub")
    assert mode(mine) == 0o755


def test_a_world_writable_directory_without_the_sticky_bit_is_refused(tmp_path: Path) -> None:
    shared = make(tmp_path / "shared", 0o777)
    for target in (shared, shared / "nua"):
        with pytest.raises(SettingsError, match=f"^{shared} is writable by others without the sticky bit"):
            settings.private_dir(target)
    assert mode(shared) == 0o777
    assert list(shared.iterdir()) == []


@pytest.mark.parametrize("perms", [0o770, 0o775])
def test_a_group_writable_place_is_refused(tmp_path: Path, perms: int) -> None:
    shared = make(tmp_path / "shared", perms)
    with pytest.raises(SettingsError, match=f"^{shared} is writable by its group without the sticky bit"):
        settings.private_dir(shared)
    assert mode(shared) == perms


def test_a_world_writable_directory_higher_up_is_refused(tmp_path: Path) -> None:
    shared = make(tmp_path / "shared", 0o777)
    inner = make(shared / "inner", 0o700)
    with pytest.raises(SettingsError, match=f"{shared} is writable by others"):
        settings.private_dir(inner / "nua")
    assert not (inner / "nua").exists()
    assert mode(shared) == 0o777


def test_a_group_writable_directory_higher_up_is_accepted(tmp_path: Path) -> None:
    logs = make(tmp_path / "log", 0o775)  # as /var/log is root:syslog 0775 on some systems
    assert mode(settings.private_dir(logs / "nua")) == 0o700
    assert mode(logs) == 0o775


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises((SettingsError, OSError)):
        settings.private_dir(tmp_path / "file")


@needs_root
def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = make(tmp_path / "theirs", 0o755)
    os.chown(theirs, NOBODY, NOBODY)
    for target in (theirs, theirs / "nua"):
        with pytest.raises(SettingsError, match=f"{theirs} belongs to uid {NOBODY}"):
            settings.private_dir(target)
    assert mode(theirs) == 0o755
    assert theirs.stat().st_uid == NOBODY


@needs_root
def test_a_directory_made_by_someone_else_in_a_sticky_parent_is_refused(tmp_path: Path) -> None:
    shared = make(tmp_path / "tmp", 0o1777)
    planted = make(shared / "nua", 0o700)  # another user got there first
    os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(SettingsError, match=f"{planted} belongs to uid {NOBODY}"):
        settings.private_dir(planted)


@needs_root
def test_a_symlink_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    shared = make(tmp_path / "tmp", 0o1777)
    target = make(tmp_path / "target", 0o700)
    link = shared / "nua"
    link.symlink_to(target)
    os.lchown(link, NOBODY, NOBODY)
    with pytest.raises(SettingsError, match=f"{link} belongs to uid {NOBODY}"):
        settings.private_dir(link)
