"""The sentinel, actor-level and in a real daemon: pid file removed or rewritten, exit flag."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pykka
import pytest
from daemon_helpers import DaemonEnv, is_alive
from sentinelkit import Requests

from nua import settings
from nua.actors import sentinel
from nua.actors.messages import Crash, Exited, Ping
from nua.actors.sentinel import INTERVAL_S, Check, Sentinel
from nua.actors.supervised import ChildContext

WAIT_S = 5.0


@pytest.fixture
def files(tmp_path: Path) -> settings.Settings:
    environ = {
        "NUA_SERVER_PID_FILE": str(tmp_path / "nua.pid"),
        "NUA_SERVER_EXIT_FLAG": str(tmp_path / "nua.exit"),
        "NUA_ZMQ_ENDPOINT": f"ipc://{tmp_path}/nua.sock",
    }
    return settings.load(environ=environ)


@pytest.fixture
def start_sentinel() -> Iterator[Callable[..., tuple[pykka.ActorRef[Sentinel], Requests]]]:
    refs: list[pykka.ActorRef[Sentinel]] = []

    def start(config: settings.Settings, generation: int = 1) -> tuple[pykka.ActorRef[Sentinel], Requests]:
        requests = Requests()
        ref = Sentinel.start(ChildContext("sentinel", generation, lambda _exited: None), config, requests)
        refs.append(ref)
        assert ref.ask(Ping(), timeout=WAIT_S) is True
        return ref, requests

    yield start
    for ref in refs:
        if ref.is_alive():
            ref.stop(timeout=WAIT_S)


def write_pid(config: settings.Settings, pid: int) -> Path:
    path = Path(config.server.pid_file)
    path.write_text(f"{pid}\n")
    return path


def test_quiet_while_the_pid_file_is_ours(files: settings.Settings, start_sentinel) -> None:
    write_pid(files, os.getpid())
    ref, requests = start_sentinel(files)
    for _ in range(3):  # each ask is answered after the look it asked for
        ref.ask(Check(), timeout=WAIT_S)
    assert not requests.arrived.is_set(), "no request while nothing changed"
    assert ref.is_alive()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda path: path.unlink(), "was removed"),
        (lambda path: path.write_text("1\n"), "rewritten with pid 1"),
        (lambda path: path.write_text("garbage"), "not a pid"),
        (lambda path: path.with_name("nua.exit").touch(), "exit flag"),
    ],
    ids=["removed", "rewritten", "garbage", "exit-flag"],
)
def test_the_ticker_notices_a_change_on_its_own(files: settings.Settings, start_sentinel, change, expected) -> None:
    path = write_pid(files, os.getpid())
    ref, requests = start_sentinel(files)
    change(path)
    assert requests.arrived.wait(WAIT_S), "nobody but the ticker asks it to look"
    assert expected in requests.reasons[0]
    ref.ask(Check(), timeout=WAIT_S)
    ref.ask(Check(), timeout=WAIT_S)
    assert len(requests.reasons) == 1, "one request, however many looks follow"


@pytest.mark.parametrize(
    "change",
    [lambda path: path.unlink(), lambda path: path.write_text("1\n"), lambda path: path.with_name("nua.exit").touch()],
    ids=["removed", "rewritten", "exit-flag"],
)
def test_inotify_tells_the_sentinel_at_once_without_a_look_by_time(
    files: settings.Settings, start_sentinel, change, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An hour between looks by time: only the file watch can tell the sentinel within the wait.
    monkeypatch.setattr(sentinel, "INTERVAL_S", 3600.0)
    monkeypatch.setattr(sentinel, "IDLE_INTERVAL_S", 3600.0)
    path = write_pid(files, os.getpid())
    _, requests = start_sentinel(files)
    change(path)
    assert requests.arrived.wait(WAIT_S), "the file watch did not tell the sentinel"


@pytest.mark.parametrize(
    "change",
    [lambda path: path.unlink(), lambda path: path.with_name("nua.exit").touch()],
    ids=["removed", "exit-flag"],
)
def test_the_first_look_after_a_change_requests_shutdown(files: settings.Settings, start_sentinel, change) -> None:
    """Without inotify, a look every INTERVAL_S acts on a change within a second (the issue's promise)."""
    assert 2 * INTERVAL_S <= 1.0
    path = write_pid(files, os.getpid())
    ref, requests = start_sentinel(files)
    change(path)
    ref.ask(Check(), timeout=WAIT_S)  # answered after the look: the ticker's or this one
    assert requests.arrived.is_set()
    assert len(requests.reasons) == 1


def test_an_exit_flag_present_at_its_start_is_a_request(files: settings.Settings, start_sentinel) -> None:
    # The daemon removes a crash's leftovers before it is ready: whatever the sentinel finds came after.
    write_pid(files, os.getpid())
    Path(files.server.exit_flag).touch()
    _, requests = start_sentinel(files)
    assert requests.arrived.wait(WAIT_S)
    assert "exit flag" in requests.reasons[0]


def test_a_restarted_sentinel_obeys_an_exit_flag(files: settings.Settings, start_sentinel) -> None:
    write_pid(files, os.getpid())
    Path(files.server.exit_flag).touch()
    _, requests = start_sentinel(files, generation=2)
    assert requests.arrived.wait(WAIT_S)
    assert "exit flag" in requests.reasons[0]


def test_crash_reports_exit_and_stops_the_ticker(files: settings.Settings) -> None:
    write_pid(files, os.getpid())
    exits: list[Exited] = []
    exited = threading.Event()

    def on_exit(exit_report: Exited) -> None:
        exits.append(exit_report)
        exited.set()

    ref = Sentinel.start(ChildContext("sentinel-crashing", 1, on_exit), files, Requests())
    ref.ask(Ping(), timeout=WAIT_S)
    # The ticker the actor started, known by the name it gives it (its child id).
    (ticker,) = [thread for thread in threading.enumerate() if thread.name == "sentinel-crashing-ticker"]
    ref.tell(Crash("test"))
    assert exited.wait(WAIT_S)
    assert exits[0].error is not None
    assert "test" in exits[0].error
    # The sentinel stops its ticker before its thread reports the exit; the ticker's
    # thread then ends by itself (closing its file watch may wait for the kernel).
    ticker.join(WAIT_S)
    assert not ticker.is_alive()


# -- in a real daemon ------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["file", "dangling-link"])
def test_the_daemon_removes_what_a_crash_left_before_it_is_ready(daemon: DaemonEnv, flag: str) -> None:
    daemon.run_dir.mkdir(mode=0o700, exist_ok=True)
    if flag == "file":
        daemon.exit_flag.touch()
    else:  # any entry by that name is the flag: a dangling link left by a crash is cleaned, not obeyed
        daemon.exit_flag.symlink_to(daemon.exit_flag.with_name("gone"))
    stale_temp = daemon.pid_file.with_name(f".{daemon.pid_file.name}.99999.tmp")
    stale_temp.write_text("99999\n")
    pid = daemon.start()
    assert not daemon.exit_flag.is_symlink()
    assert not daemon.exit_flag.exists()
    assert not stale_temp.exists()
    assert daemon.nua("user", "count").returncode == 0
    assert is_alive(pid), "a crash's exit flag is no request"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda env: env.pid_file.unlink(), "was removed"),
        (lambda env: env.pid_file.write_text("1\n"), "rewritten with pid 1"),
        (lambda env: env.exit_flag.touch(), "exit flag"),
    ],
    ids=["pid-file-removed", "pid-file-rewritten", "exit-flag"],
)
def test_daemon_shuts_down_gracefully(daemon: DaemonEnv, change, reason: str) -> None:
    pid = daemon.start()
    change(daemon)
    daemon.wait_gone(pid)  # how fast is for the sentinel's actor-level test above (one look interval)
    record = daemon.wait_for_log("shutdown_requested", pid=pid)
    assert reason in record["reason"]
    assert daemon.wait_for_log("daemon_exited", pid=pid)
    assert not daemon.exit_flag.exists()
    assert not daemon.socket.exists()
    if "rewritten" in reason:
        assert daemon.pid_file.read_text() == "1\n", "a pid file naming another process is not ours to remove"
    else:
        assert not daemon.pid_file.exists()
