"""The daemon as a process: its fd limit, running out of descriptors, its exit codes, its directories, its log file."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from daemon_helpers import DAEMON, WAIT_S, DaemonEnv, is_alive, wait_until

from nua import settings
from nua.daemon import control, runner
from nua.rpc.client import Client


def limited(soft: int, hard: int) -> Callable[[], None]:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return preexec


def start_with_limit(daemon: DaemonEnv, soft: int, hard: int) -> int:
    """``start`` (daemonising) from a process whose open-file limit is ``soft``/``hard``; the daemon's pid."""
    result = subprocess.run(
        [*DAEMON, "--config", str(daemon.config), "start"],
        capture_output=True,
        text=True,
        timeout=60,
        env=daemon.env(),
        check=False,
        preexec_fn=limited(soft, hard),
    )
    daemon.remember_daemon()
    assert result.returncode == 0, result.stderr + result.stdout
    pid = daemon.pid()
    assert pid is not None
    return pid


def open_file_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    pytest.fail("no 'Max open files' in /proc/PID/limits")


def test_the_soft_fd_limit_is_raised_to_the_hard_one_and_logged(daemon: DaemonEnv) -> None:
    pid = start_with_limit(daemon, 256, 2048)
    assert open_file_limits(pid) == (2048, 2048)
    record = daemon.wait_for_log("fd_limit", pid=pid)
    assert (record["soft_before"], record["soft"], record["hard"]) == (256, 2048, 2048)


@pytest.fixture
def idle_connections() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        yield held
    finally:
        for sock in held:
            sock.close()


def listening_port(pid: int) -> int:
    for conn in psutil.Process(pid).net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN:
            return int(conn.laddr.port)
    return 0


def test_running_out_of_descriptors_does_not_stop_the_daemon(daemon: DaemonEnv, idle_connections) -> None:
    # TCP, as an attacker with a local account would: the kernel picks the port.
    # (libzmq 4.3.5 aborts on EMFILE in its ipc:// listener, unlike its TCP one.)
    daemon.write_config(zmq={"endpoint": "tcp://127.0.0.1:*"})
    limit = 64
    pid = start_with_limit(daemon, limit, limit)
    assert open_file_limits(pid) == (limit, limit)
    port = wait_until(lambda: listening_port(pid), what="the daemon's TCP port")
    # More idle connections than the daemon has descriptors: those it accepts
    # take its last ones, the rest wait in the listen backlog.
    for _ in range(limit):
        sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        idle_connections.append(sock)
    failure = daemon.wait_for_log("watched_file_unreadable", errno="EMFILE")
    assert failure["path"] == str(daemon.pid_file)
    # Before the fix the sentinel took this for a rewritten pid file at its
    # second look (a quarter of a second later) and the daemon exited 0.
    assert not control.wait_gone(pid, 1.5), "the daemon must outlive several failed looks"
    for sock in idle_connections:
        sock.close()
    with Client(f"tcp://127.0.0.1:{port}", timeout=WAIT_S) as client:
        assert wait_until(lambda: _answers(client), what="the daemon to answer again") == 5
    daemon.wait_for_log("watched_file_readable", path=str(daemon.pid_file))
    assert is_alive(pid)
    assert not [e for e in daemon.log_events() if e.get("event") == "shutdown_requested"]
    os.kill(pid, signal.SIGTERM)
    daemon.wait_gone(pid)
    daemon.wait_for_log("daemon_exited", pid=pid)


def _answers(client: Client) -> int | None:
    with contextlib.suppress(Exception):
        result = client.call("test_add", 2, 3)
        return int(result)
    return None


# -- exit codes ----------------------------------------------------------------------------


def test_a_root_supervisor_that_stops_by_itself_is_a_failure(tmp_path: Path) -> None:
    config = settings.load(environ={"NUA_SERVER_PID_FILE": str(tmp_path / "nua.pid")})
    daemon = runner.Daemon(config, foreground=True)
    stopped = runner._Event(runner._Kind.ROOT_EXITED, None)
    assert daemon._handle(stopped) == runner.EXIT_FAILED
    assert daemon._handle(runner._Event(runner._Kind.SHUTDOWN, "exit flag")) == runner.EXIT_OK
    assert daemon._handle(signal.SIGTERM) == runner.EXIT_OK


# -- directories ---------------------------------------------------------------------------


def make_dir(path: Path, perms: int) -> Path:
    path.mkdir()
    path.chmod(perms)
    return path


@pytest.mark.parametrize("command", [["start"], ["start", "--foreground"]], ids=["daemonised", "foreground"])
@pytest.mark.parametrize("what", ["pid_file", "socket"])
def test_an_unsafe_directory_is_refused_with_exit_6_and_left_as_it_is(
    daemon: DaemonEnv, command: list[str], what: str
) -> None:
    shared = make_dir(daemon.root / "shared", 0o777)  # world-writable, no sticky bit
    if what == "pid_file":
        daemon.write_config(server={"pid_file": str(shared / "nua.pid")})
    else:
        daemon.write_config(zmq={"endpoint": f"ipc://{shared}/nua.sock"})
    result = daemon.cli(*command)
    assert result.returncode == 6, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if str(shared) in line]
    assert lines
    assert "writable by others without the sticky bit" in lines[0]
    assert "Traceback" not in result.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o777
    assert list(shared.iterdir()) == []


def test_files_directly_in_a_sticky_shared_directory_leave_its_mode_alone(daemon: DaemonEnv) -> None:
    shared = make_dir(daemon.root / "tmp", 0o1777)  # stands in for /tmp
    # Not the socket: anyone could reach it there (issue 10: an ipc socket lives in a 0700 directory).
    daemon.write_config(zmq={"endpoint": f"ipc://{shared}/nua.sock"})
    refused = daemon.cli("start")
    assert refused.returncode == 6, refused.stdout + refused.stderr
    assert str(shared) in refused.stderr
    daemon.write_config(server={"pid_file": str(shared / "nua.pid")}, zmq={"endpoint": daemon.endpoint})
    daemon.pid_file = shared / "nua.pid"
    pid = daemon.start()
    assert daemon.socket.is_socket()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert daemon.cli("stop").returncode == 0
    daemon.wait_gone(pid)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


def test_created_directories_are_0700_and_the_existing_parent_is_unchanged(daemon: DaemonEnv) -> None:
    parent = make_dir(daemon.root / "base", 0o755)
    run_dir = parent / "a" / "run"
    daemon.write_config(server={"pid_file": str(run_dir / "nua.pid")})
    daemon.pid_file = run_dir / "nua.pid"
    daemon.start()
    assert stat.S_IMODE((parent / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(parent.stat().st_mode) == 0o755
    assert daemon.cli("stop").returncode == 0


# -- the log file --------------------------------------------------------------------------


def test_sighup_reopens_the_log_file_and_remakes_its_removed_directory(daemon: DaemonEnv) -> None:
    pid = daemon.start()
    shutil.rmtree(daemon.log_file.parent)
    os.kill(pid, signal.SIGHUP)
    reopened = daemon.wait_for_log("log_reopened", pid=pid)
    assert reopened["log_file"] == str(daemon.log_file)
    assert stat.S_IMODE(daemon.log_file.parent.stat().st_mode) == 0o700
    daemon.wait_for_log("settings_reloaded", pid=pid)
    assert daemon.cli("stop").returncode == 0
    daemon.wait_gone(pid)
    events = [e["event"] for e in daemon.log_events()]
    assert events[0] == "log_reopened", "the new file starts with the re-open"
    assert "daemon_stopping" in events
    assert "daemon_exited" in events


def test_sighup_after_logrotate_moved_the_file_writes_to_a_new_one(daemon: DaemonEnv) -> None:
    pid = daemon.start()
    rotated = daemon.log_file.with_suffix(".log.1")
    daemon.log_file.rename(rotated)
    os.kill(pid, signal.SIGHUP)
    daemon.wait_for_log("settings_reloaded", pid=pid)
    with Client(daemon.endpoint, timeout=WAIT_S) as client:
        assert client.call("test_add", 1, 1) == 2
    assert daemon.cli("stop").returncode == 0
    daemon.wait_gone(pid)
    old = rotated.read_text()
    assert "daemon_ready" in old
    assert "log_reopened" not in old
    assert "daemon_exited" in [e["event"] for e in daemon.log_events()]
