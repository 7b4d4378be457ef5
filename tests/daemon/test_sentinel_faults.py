"""The sentinel takes a failed look at its files for an error to log and retry, never for a reason to stop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest
import structlog
from sentinelkit import Requests

from nua import settings
from nua.actors.messages import Ping
from nua.actors.sentinel import Check, Sentinel
from nua.actors.supervised import ChildContext

WAIT_S = 5.0


def load(tmp_path: Path, pid_file: Path, exit_flag: Path) -> settings.Settings:
    environ = {
        "NUA_SERVER_PID_FILE": str(pid_file),
        "NUA_SERVER_EXIT_FLAG": str(exit_flag),
        "NUA_ZMQ_ENDPOINT": f"ipc://{tmp_path}/nua.sock",
    }
    return settings.load(environ=environ)


@pytest.fixture
def logs() -> Iterator[list[dict[str, object]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured


def start(config: settings.Settings) -> tuple[pykka.ActorRef[Sentinel], Requests]:
    requests = Requests()
    ref = Sentinel.start(ChildContext("sentinel", 2, lambda _exited: None), config, requests)
    assert ref.ask(Ping(), timeout=WAIT_S) is True
    return ref, requests


def looks(ref: pykka.ActorRef[Sentinel], count: int) -> None:
    for _ in range(count):
        ref.ask(Check(), timeout=WAIT_S)  # an ask returns once the look is done


def events(logs: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [entry for entry in logs if entry.get("event") == name]


def test_an_unreadable_pid_file_is_logged_once_and_retried(tmp_path: Path, logs) -> None:
    pid_file = tmp_path / "nua.pid"
    pid_file.symlink_to(pid_file.name)  # a loop: every open fails with ELOOP, yet the file is there
    ref, requests = start(load(tmp_path, pid_file, tmp_path / "nua.exit"))
    try:
        looks(ref, 10)
        assert requests.reasons == []
        failures = events(logs, "watched_file_unreadable")
        assert len(failures) == 1, failures
        assert failures[0]["path"] == str(pid_file)
        assert failures[0]["errno"] == "ELOOP"

        # Made readable in one step (a rename over the link): inotify has the sentinel look
        # at once, and a removal seen between an unlink and a write would be a reason to stop.
        readable = tmp_path / "nua.pid.new"
        readable.write_text(f"{os.getpid()}\n")
        readable.replace(pid_file)
        looks(ref, 2)
        assert requests.reasons == []
        assert events(logs, "watched_file_readable")[0]["path"] == str(pid_file)

        pid_file.unlink()  # positive evidence still stops it
        looks(ref, 1)
        assert requests.arrived.wait(WAIT_S)
        assert "was removed" in requests.reasons[0]
    finally:
        ref.stop(timeout=WAIT_S)


def test_an_exit_flag_that_cannot_be_looked_at_is_not_taken_as_present(tmp_path: Path, logs) -> None:
    pid_file = tmp_path / "nua.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    exit_flag = blocker / "nua.exit"  # lstat fails with ENOTDIR: neither present nor absent
    ref, requests = start(load(tmp_path, pid_file, exit_flag))
    try:
        looks(ref, 10)
        assert requests.reasons == []
        failures = events(logs, "watched_file_unreadable")
        assert [(f["path"], f["errno"]) for f in failures] == [(str(exit_flag), "ENOTDIR")]
    finally:
        ref.stop(timeout=WAIT_S)


def test_a_huge_pid_file_is_garbage_not_a_memory_hog(tmp_path: Path) -> None:
    pid_file = tmp_path / "nua.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    ref, requests = start(load(tmp_path, pid_file, tmp_path / "nua.exit"))
    try:
        with pid_file.open("r+") as file:
            file.truncate(1 << 30)  # sparse: costs no disk
        looks(ref, 2)
        assert requests.arrived.wait(WAIT_S)
        assert "not a pid" in requests.reasons[0]
    finally:
        ref.stop(timeout=WAIT_S)


NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file owned by another account needs root")
@pytest.mark.parametrize("generation", [1, 2])
def test_an_exit_flag_of_another_account_neither_stops_nor_is_removed(tmp_path: Path, logs, generation: int) -> None:
    # An exit flag in a shared sticky directory (/tmp) can be made by any local account.
    pid_file = tmp_path / "nua.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    exit_flag = tmp_path / "nua.exit"
    exit_flag.touch()
    os.lchown(exit_flag, NOBODY, NOBODY)
    requests = Requests()
    ref = Sentinel.start(
        ChildContext("sentinel", generation, lambda _exited: None), load(tmp_path, pid_file, exit_flag), requests
    )
    try:
        assert ref.ask(Ping(), timeout=WAIT_S) is True
        looks(ref, 10)
        assert requests.reasons == []
        assert exit_flag.exists()  # not the daemon's to remove, even at its first start
        ignored = events(logs, "exit_flag_ignored")
        assert [(entry["path"], entry["owner_uid"]) for entry in ignored] == [(str(exit_flag), NOBODY)]

        exit_flag.unlink()
        exit_flag.touch()  # ours: obeyed
        looks(ref, 1)
        assert requests.arrived.wait(WAIT_S)
        assert "exit flag" in requests.reasons[0]
    finally:
        ref.stop(timeout=WAIT_S)
