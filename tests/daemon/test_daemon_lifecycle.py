"""``nua-orchestrator start|run|stop|restart|status`` on real daemon processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest
from daemon_helpers import REPO, WAIT_S, DaemonEnv, is_alive, wait_until

from nua import endpoint, runtime


def test_start_status_stop_daemonised(daemon: DaemonEnv) -> None:
    code, report = daemon.status()
    assert (code, report["state"]) == (3, "stopped")

    pid = daemon.start()
    process = psutil.Process(pid)
    assert process.ppid() != os.getpid(), "the daemon must not stay our child"
    assert os.getsid(pid) != os.getsid(0), "setsid: a session of its own"
    assert os.getsid(pid) != pid, "double fork: not a session leader, so it can never regain a terminal"
    assert process.cwd() == "/"
    umask = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Umask"))
    assert umask.split()[1] == "0027"
    for fd in (0, 1, 2):
        assert str(Path(f"/proc/{pid}/fd/{fd}").readlink()) == os.devnull
    assert daemon.socket.is_socket(), "ready means the endpoint is bound"
    assert (daemon.run_dir.stat().st_mode & 0o777) == 0o700

    code, report = daemon.status()
    assert code == 0, report
    assert report["pid"] == pid
    assert report["endpoint"] == daemon.endpoint
    assert report["uptime_s"] >= 0
    tree = report["tree"]
    assert tree["id"] == "root"
    children = [child["id"] for child in tree["children"]]
    assert children == ["sentinel", "db_writer", "db_reader", "services", "cron", "gateway"]
    for node in (tree, *tree["children"]):
        assert node["state"] == "running"
        assert node["restarts"] == 0
        assert {"started_at", "last_error", "children"} <= node.keys()

    text = daemon.cli("status")
    assert text.returncode == 0
    assert f"pid {pid}" in text.stdout
    assert "gateway: running, restarts 0" in text.stdout

    stopped = daemon.cli("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped (pid {pid})" in stopped.stdout
    assert not is_alive(pid), "stop returns once the process is gone"
    assert not daemon.pid_file.exists()
    assert not daemon.socket.exists()
    assert endpoint.is_free(daemon.endpoint)
    assert (daemon.status()[0]) == 3


def test_foreground_with_systemd_notify(daemon: DaemonEnv, tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify_socket:
        notify_socket.bind(str(notify_path))
        notify_socket.settimeout(WAIT_S)
        process = daemon.spawn("start", "--foreground", env=daemon.env(NOTIFY_SOCKET=str(notify_path)))
        assert notify_socket.recv(256) == b"READY=1"
        assert daemon.pid() == process.pid
        assert daemon.socket.is_socket()
        code, report = daemon.status()
        assert code == 0, report
        assert report["pid"] == process.pid

        process.send_signal(signal.SIGTERM)
        assert notify_socket.recv(256) == b"STOPPING=1"
        _, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 0, stderr
    assert "daemon_ready" in stderr, "the foreground daemon logs to the console"
    assert not daemon.pid_file.exists()
    assert not daemon.socket.exists()


def test_run_is_start_foreground_and_stops_on_sigint(daemon: DaemonEnv) -> None:
    process = daemon.spawn("run")
    wait_until(lambda: daemon.socket.is_socket() and daemon.pid() == process.pid, what="the daemon to serve")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 0, stderr
    assert "signal SIGINT" in stderr
    assert not daemon.pid_file.exists()


def test_second_start_says_already_running(daemon: DaemonEnv) -> None:
    pid = daemon.start()
    again = daemon.cli("start")
    assert again.returncode == 0
    assert f"already running (pid {pid})" in again.stdout
    # In the foreground nothing would run: that is a failure, saying what to do (make run's case).
    foreground = daemon.cli("run")
    assert foreground.returncode == 1
    assert f"already running (pid {pid}, pid file {daemon.pid_file})" in foreground.stderr
    assert "stop it first" in foreground.stderr
    assert daemon.pid() == pid


NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="a pid file of another account needs root to make")
@pytest.mark.parametrize("command", ["start", "run"])
def test_a_pid_file_held_by_another_account_is_refused_not_taken_for_a_daemon(
    daemon: DaemonEnv, request: pytest.FixtureRequest, command: str
) -> None:
    # In a shared sticky directory (as /tmp) another account can make the pid file
    # first and hold its lock: that is no daemon of ours, and "already running" (exit 0)
    # would leave the service down while claiming success.
    # Not under tmp_path: pytest's directories are private, and the other account must reach it.
    shared = Path(tempfile.mkdtemp(prefix="nua-shared-"))
    shared.chmod(0o1777)
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    pid_file = shared / "nua.pid"
    daemon.write_config(server={"pid_file": str(pid_file)})
    script = (
        "import fcntl, os, sys\n"
        f"os.setgid({NOBODY}); os.setuid({NOBODY})\n"
        f"fd = os.open({str(pid_file)!r}, os.O_RDWR | os.O_CREAT, 0o644)\n"
        "os.write(fd, b'1\\n'); fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True); sys.stdin.read()"
    )
    squatter = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert squatter.stdout is not None
        assert squatter.stdout.readline() == "locked\n"
        result = daemon.cli(command)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "already running" not in result.stdout
        assert f"{pid_file} belongs to uid {NOBODY}" in result.stdout + result.stderr
    finally:
        squatter.kill()
        squatter.wait()


def test_concurrent_starts_yield_exactly_one_daemon(daemon: DaemonEnv) -> None:
    starters = [daemon.spawn("start") for _ in range(4)]
    outputs = [starter.communicate(timeout=60) for starter in starters]
    assert [starter.returncode for starter in starters] == [0, 0, 0, 0], outputs
    daemon.remember_daemon()
    pid = daemon.pid()
    assert pid is not None
    assert sum("started (pid" in out for out, _ in outputs) == 1, outputs
    assert all(f"pid {pid}" in out for out, _ in outputs), outputs
    daemons = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if str(daemon.config) in " ".join(p.info["cmdline"] or ()) and p.status() != psutil.STATUS_ZOMBIE
    ]
    assert daemons == [pid]


def test_stale_pid_file_after_kill_9_is_replaced(daemon: DaemonEnv) -> None:
    old = daemon.start()
    os.kill(old, signal.SIGKILL)
    daemon.wait_gone(old)
    assert daemon.pid_file.exists()

    code, report = daemon.status()
    assert (code, report["state"], report["pid"]) == (1, "dead", old)

    new = daemon.start()
    assert new != old
    assert daemon.status()[0] == 0


def test_pid_reused_by_an_unrelated_process_is_not_a_daemon(daemon: DaemonEnv) -> None:
    # A live process that is not a nua daemon (and holds no lock) now has the pid.
    unrelated = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    daemon.popens.append(unrelated)  # type: ignore[arg-type]
    daemon.run_dir.mkdir(mode=0o700, exist_ok=True)
    daemon.pid_file.write_text(f"{unrelated.pid}\n")

    code, report = daemon.status()
    assert (code, report["state"]) == (1, "dead")
    stopped = daemon.cli("stop")
    assert stopped.returncode == 0
    assert "not running" in stopped.stdout
    assert is_alive(unrelated.pid), "stop must never signal a pid it does not own"

    daemon.pid_file.write_text(f"{unrelated.pid}\n")
    pid = daemon.start()
    assert pid != unrelated.pid
    assert is_alive(unrelated.pid)


def test_stop_when_not_running(daemon: DaemonEnv) -> None:
    result = daemon.cli("stop")
    assert result.returncode == 0
    assert "not running" in result.stdout


def test_restart_starts_the_new_daemon_after_the_old_one_exited(daemon: DaemonEnv) -> None:
    old = daemon.start()
    result = daemon.cli("restart")
    assert result.returncode == 0, result.stderr
    new = daemon.pid()
    assert new is not None
    assert new != old
    assert not is_alive(old)
    # The lines a daemon logs before ready are written just after it (nua.log.early).
    daemon.wait_for_log("daemon_ready", pid=new)
    events = [(e.get("event"), e.get("pid")) for e in daemon.log_events()]
    assert events.index(("daemon_exited", old)) < events.index(("daemon_starting", new))
    assert daemon.status()[0] == 0


def test_module_level_restart_and_stop(daemon: DaemonEnv) -> None:
    env = daemon.env(NUA_CONFIG=str(daemon.config))
    code = "import json, nua; r = nua.restart(); print(json.dumps([r.code, r.state, r.pid, r.endpoint, r.message]))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    daemon.remember_daemon()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 1, "prints nothing; the daemon never returns into the script"
    restarted, state, pid, endpoint, message = json.loads(result.stdout)
    assert (restarted, state, pid, endpoint) == (0, "running", daemon.pid(), daemon.endpoint)
    assert "not running" in message
    assert "started" in message
    assert is_alive(pid)

    code = "import json, nua; r = nua.status(); print(json.dumps([r.code, r.state, r.pid, r.ok, r.report['running']]))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert json.loads(result.stdout) == [0, "running", pid, True, True]

    # The original project's way in: a compatibility module of the same name.
    code = "import json, nua_orchestrator as o; r = o.stop(); print(json.dumps([r.code, r.state, r.pid, r.message]))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [0, "stopped", None, f"stopped (pid {pid})"]
    assert not is_alive(pid)


def test_failed_start_reports_the_reason_and_the_log(daemon: DaemonEnv) -> None:
    # Something else listens on the endpoint the daemon must bind.
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        daemon.write_config(zmq={"endpoint": f"tcp://127.0.0.1:{port}"})
        result = daemon.cli("start")
    finally:
        busy.close()
    assert result.returncode == 1
    assert "failed to start" in result.stderr
    assert str(daemon.log_file) in result.stderr
    assert "gateway" in result.stderr
    assert not daemon.pid_file.exists()


@pytest.mark.parametrize("auth", ["curve", "none"])
def test_a_client_that_start_returned_to_is_served(daemon: DaemonEnv, auth: str) -> None:
    # Ready means the endpoint is bound and the database opens: the tree starts after,
    # and a call made at once waits for it (in its CURVE handshake, or in its socket).
    daemon.write_config(zmq={"auth": auth})
    for _ in range(3):
        started = daemon.cli("start")
        assert started.returncode == 0, started.stderr
        pid = daemon.pid()
        assert pid is not None
        result = daemon.nua("user", "count")
        assert (result.returncode, result.stdout.strip()) == (0, "0"), result.stderr
        # Its record said "not serving yet" until the tree ran (status waits longer then).
        daemon.wait_for_log("daemon_serving", pid=pid)
        record = runtime.read(runtime.record_path(daemon.pid_file))
        assert record is not None
        assert record.serving
        assert daemon.cli("stop").returncode == 0
        daemon.wait_gone(pid)
    events = [event["event"] for event in daemon.log_events()]
    assert events.index("daemon_ready") < events.index("db_writer_started") < events.index("daemon_serving")


def test_an_endpoint_only_libzmq_can_bind_makes_the_daemon_ready_once_it_serves(daemon: DaemonEnv) -> None:
    # A host name is libzmq's to resolve: the gateway binds it, and ready waits for the tree.
    daemon.write_config(zmq={"endpoint": "tcp://localhost:*", "auth": "curve"})
    pid = daemon.start()
    record = runtime.read(runtime.record_path(daemon.pid_file))
    assert record is not None
    assert record.serving
    assert record.endpoint is not None
    assert record.endpoint.startswith("tcp://127.0.0.1:")
    events = [event["event"] for event in daemon.log_events()]
    assert events.index("db_writer_started") < events.index("daemon_ready") < events.index("daemon_serving")
    assert daemon.cli("status").returncode == 0, pid
    result = daemon.nua("user", "count")
    assert (result.returncode, result.stdout.strip()) == (0, "0"), result.stderr


def test_a_socket_file_left_by_a_crash_is_replaced_before_the_daemon_binds(daemon: DaemonEnv) -> None:
    daemon.run_dir.mkdir(mode=0o700, exist_ok=True)
    with socket.socket(socket.AF_UNIX) as leftover:
        leftover.bind(str(daemon.socket))  # closed without unlinking: a crash leftover
    daemon.start()
    assert daemon.wait_for_log("stale_file_removed", path=str(daemon.socket))
    result = daemon.nua("user", "count")
    assert (result.returncode, result.stdout.strip()) == (0, "0"), result.stderr


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a database, only text" * 100, "file is not a database"),
        (None, "newer than this nua's"),
    ],
)
def test_a_database_that_cannot_be_used_fails_the_start_with_its_reason(
    daemon: DaemonEnv, content: bytes | None, reason: str
) -> None:
    if content is None:  # a nua database from a newer nua
        with sqlite3.connect(daemon.db) as conn:
            conn.execute("CREATE TABLE nua_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT INTO nua_meta VALUES ('schema_version', '999')")
        conn.close()
    else:
        daemon.db.write_bytes(content)
    result = daemon.cli("start")
    assert result.returncode == 1
    assert "failed to start" in result.stderr
    assert reason in result.stderr
    assert str(daemon.log_file) in result.stderr
    assert not daemon.pid_file.exists()
    assert not runtime.record_path(daemon.pid_file).exists()


def test_bad_config_is_reported_without_a_traceback(daemon: DaemonEnv) -> None:
    daemon.config.write_text("[server]\nno_such_key = 1\n")
    result = daemon.cli("start")
    assert result.returncode == 6
    assert "no_such_key" in result.stderr
    assert "Traceback" not in result.stderr
    status = daemon.cli("status")
    assert status.returncode == 4


def test_help_and_version() -> None:
    for args, expected in ((["--help"], "restart"), (["--version"], "nua-orchestrator 0.1.0")):
        result = subprocess.run(
            [str(REPO / "bin" / "nua-orchestrator"), *args], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0
        assert expected in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_signals_stop_the_daemon_gracefully(daemon: DaemonEnv, signum: int) -> None:
    pid = daemon.start()
    os.kill(pid, signum)
    daemon.wait_gone(pid)
    assert daemon.wait_for_log("shutdown_requested", pid=pid)["reason"] == f"signal {signal.Signals(signum).name}"
    assert daemon.wait_for_log("daemon_exited", pid=pid)
    # Reverse start order: the gateway (started last) stops first, the sentinel (first) last.
    events = [
        e["event"] if e["event"] != "supervisor_stopped" else f"{e.get('actor')}_stopped" for e in daemon.log_events()
    ]
    order = [events.index(name) for name in ("gateway_stopped", "services_stopped", "sentinel_stopped", "root_stopped")]
    assert order == sorted(order), events
    assert not daemon.pid_file.exists()
    assert not daemon.socket.exists()


def test_stop_never_signals_a_pid_that_does_not_hold_the_lock(daemon: DaemonEnv) -> None:
    # A live process holds the lock, but the file names another, unrelated process.
    bystander = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    daemon.popens.append(bystander)  # type: ignore[arg-type]
    daemon.run_dir.mkdir(mode=0o700, exist_ok=True)
    code = (
        "import sys; from nua.pidfile import PidFile;"
        " PidFile(sys.argv[1]).acquire(pid=int(sys.argv[2])); print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(daemon.pid_file), str(bystander.pid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=daemon.env(),
    )
    daemon.popens.append(holder)
    assert holder.stdout is not None
    assert holder.stdout.readline() == "locked\n"

    status, report = daemon.status()
    assert (status, report["state"]) == (4, "unknown")
    stopped = daemon.cli("stop")
    assert stopped.returncode == 1
    assert "not signalling it" in stopped.stderr
    assert is_alive(bystander.pid)
    started = daemon.cli("start")
    assert started.returncode == 0
    assert "already running" in started.stdout, "the lock, not the pid, decides"


def test_stop_falls_back_to_sigkill_and_cleans_up(daemon: DaemonEnv) -> None:
    daemon.write_config(server={"stop_timeout_s": 0.3})
    pid = daemon.start()
    os.kill(pid, signal.SIGSTOP)  # a daemon that cannot react to SIGTERM, nor answer
    code, report = daemon.status()  # must not hang
    assert (code, report["state"], report["pid"]) == (4, "unknown", pid)
    assert "does not answer" in report["message"]
    result = daemon.cli("stop")
    assert result.returncode == 0, result.stderr
    assert "still running 0.3 s after SIGTERM" in result.stderr
    assert f"stopped (pid {pid})" in result.stdout
    assert not is_alive(pid)
    assert not daemon.pid_file.exists()
    assert not daemon.socket.exists()
    assert daemon.start() != pid
