"""The runtime record on real daemons: a daemon is found where it listens, not where the settings say.

Each daemon listens on TCP here (port 0, or a free port given by ``NUA_ZMQ_PORT``
at start only), so that the settings the later commands load name another
endpoint than the one it bound: only the record can lead them to it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

from daemon_helpers import DaemonEnv, is_alive

import nua
from nua import runtime

ANY_PORT = "tcp://127.0.0.1:0"


def listen_on_any_port(daemon: DaemonEnv) -> None:
    """Settings naming ``tcp://127.0.0.1:0``: the daemon binds a port only it knows."""
    daemon.write_config(zmq={"endpoint": "", "address": "127.0.0.1", "port": 0})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def record_file(daemon: DaemonEnv) -> Path:
    return runtime.record_path(daemon.pid_file)


def record_of(daemon: DaemonEnv) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(record_file(daemon).read_text(encoding="utf-8"))
    return found


def test_started_on_another_port_it_is_found_and_stopped_without_that_port(daemon: DaemonEnv) -> None:
    listen_on_any_port(daemon)
    port = free_port()
    bound = f"tcp://127.0.0.1:{port}"
    started = daemon.cli("start", env=daemon.env(NUA_ZMQ_PORT=str(port)))
    assert started.returncode == 0, started.stderr
    assert f"endpoint {bound}" in started.stdout
    pid = daemon.pid()
    assert pid is not None

    info = record_file(daemon).stat()
    assert info.st_mode & 0o777 == 0o600
    record = record_of(daemon)
    assert record.pop("started_at") > 0
    assert type(record.pop("serving")) is bool  # False until its tree runs (test_daemon_lifecycle.py)
    assert record == {
        "format": runtime.FORMAT,
        "pid": pid,
        "version": nua.__version__,
        "endpoint": bound,
        "settings_endpoint": bound,
        "config_file": str(daemon.config),
        "server_key": None,  # auth = "none" (test_daemon_auth.py has the CURVE one)
        "log_file": str(daemon.log_file),  # daemonised: its file (null in the foreground)
        "http": None,  # no [http] port (test_daemon_http.py has one)
    }

    code, report = daemon.status()  # without NUA_ZMQ_PORT: the settings say port 0
    assert (code, report["state"], report["pid"]) == (0, "running", pid), report
    assert (report["endpoint"], report["settings_endpoint"]) == (bound, ANY_PORT)
    assert report["record"]["endpoint"] == bound
    assert bound in report["disagreement"]
    assert ANY_PORT in report["disagreement"]
    assert "record_warning" not in report

    human = daemon.cli("status")
    assert human.returncode == 0, human.stdout
    notes = [line for line in human.stdout.splitlines() if "differ" in line]
    assert len(notes) == 1, human.stdout
    assert bound in notes[0]
    assert ANY_PORT in notes[0]

    counted = daemon.nua("user", "count")
    assert (counted.returncode, counted.stdout.strip(), counted.stderr) == (0, "0", "")

    stopped = daemon.cli("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped (pid {pid})" in stopped.stdout
    assert not is_alive(pid)
    assert not record_file(daemon).exists()
    assert not daemon.pid_file.exists()


def test_port_zero_is_recorded_resolved_and_the_settings_agree(daemon: DaemonEnv) -> None:
    listen_on_any_port(daemon)
    started = daemon.cli("start")
    assert started.returncode == 0, started.stderr
    bound = record_of(daemon)["endpoint"]
    assert bound.startswith("tcp://127.0.0.1:")
    assert bound != ANY_PORT
    assert f"endpoint {bound}" in started.stdout

    code, report = daemon.status()
    assert (code, report["endpoint"], report["disagreement"]) == (0, bound, None), report
    assert "note:" not in daemon.cli("status").stdout
    assert daemon.nua("call", "test_add", "[2, 3]").stdout.strip() == "5"

    restarted = daemon.cli("restart")
    assert restarted.returncode == 0, restarted.stderr
    assert record_of(daemon)["pid"] == daemon.pid()
    assert daemon.nua("user", "count").returncode == 0


def _corruptions(good: dict[str, Any]) -> dict[str, bytes]:
    def record(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}).encode()

    return {
        "not json": b"\x00\xff{not json",
        "too large": b"{" + b" " * (runtime.MAX_RECORD_BYTES + 1) + b"}",
        "a list": b"[1, 2]",
        "negative pid": record(pid=-1),
        "pid as text": record(pid=str(good["pid"])),
        "an http endpoint": record(endpoint="http://127.0.0.1:80"),
        "a port out of range": record(endpoint="tcp://127.0.0.1:99999"),
        "an unknown key": record(extra=1),
        "a missing key": json.dumps({k: v for k, v in good.items() if k != "version"}).encode(),
        "a repeated key": b'{"pid": 1, ' + record()[1:],
    }


def test_a_corrupted_record_falls_back_to_the_settings_with_one_warning(daemon: DaemonEnv) -> None:
    pid = daemon.start()  # on the helper's ipc:// endpoint: the settings' endpoint is right
    path = record_file(daemon)
    good = record_of(daemon)
    for name, data in _corruptions(good).items():
        path.write_bytes(data)
        code, report = daemon.status()
        assert (code, report["state"], report["record"]) == (0, "running", None), name
        assert report["endpoint"] == daemon.endpoint, name
        assert report["record_warning"].startswith(f"ignoring the runtime record {path}: "), name
        counted = daemon.nua("user", "count")
        assert counted.returncode == 0, (name, counted.stderr)
        assert counted.stderr.count("\n") == 1, (name, counted.stderr)
        assert counted.stderr.startswith("nua: warning: ignoring the runtime record"), (name, counted.stderr)

    path.write_bytes(json.dumps(good).encode())
    path.chmod(0o622)
    code, report = daemon.status()
    assert (code, report["record"]) == (0, None)
    assert "writable by others" in report["record_warning"]
    human = daemon.cli("status").stdout.splitlines()
    assert [line for line in human if "warning:" in line] == [f"  {'warning:':<13}{report['record_warning']}"]

    elsewhere = daemon.root / "planted.json"
    elsewhere.write_bytes(json.dumps(good).encode())
    path.unlink()
    path.symlink_to(elsewhere)
    code, report = daemon.status()
    assert (code, report["record"]) == (0, None)
    assert "symbolic link" in report["record_warning"]

    path.unlink()
    os.mkfifo(path, 0o600)  # a reader that opened it blocking would hang here
    code, report = daemon.status()
    assert (code, report["record"]) == (0, None)
    assert "not a regular file" in report["record_warning"]

    stopped = daemon.cli("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "warning: ignoring the runtime record" in stopped.stderr
    assert not is_alive(pid)


def test_kill_9_leaves_a_stale_record_that_is_not_trusted_and_is_replaced(daemon: DaemonEnv) -> None:
    listen_on_any_port(daemon)
    old = daemon.start()
    old_endpoint = record_of(daemon)["endpoint"]
    os.kill(old, signal.SIGKILL)
    daemon.wait_gone(old)
    assert record_of(daemon)["pid"] == old  # nobody could remove it

    code, report = daemon.status()
    assert (code, report["state"], report["record"]) == (1, "dead", None), report
    assert report["endpoint"] == ANY_PORT
    assert f"pid {old} does not hold the lock" in report["record_warning"]
    assert old_endpoint not in json.dumps({k: v for k, v in report.items() if k != "record_warning"})
    unreachable = daemon.nua("user", "count", "--timeout", "1")
    assert unreachable.returncode == 3
    assert "stale runtime record" in unreachable.stderr

    new = daemon.start()
    daemon.wait_for_log("stale_file_removed", path=str(record_file(daemon)))
    assert record_of(daemon)["pid"] == new
    code, report = daemon.status()
    assert (code, report["pid"], report["endpoint"]) == (0, new, record_of(daemon)["endpoint"])
    assert "record_warning" not in report


def test_a_daemon_that_does_not_answer_is_reported_without_contradiction(daemon: DaemonEnv) -> None:
    listen_on_any_port(daemon)
    daemon.write_config(server={"stop_timeout_s": 0.3})
    pid = daemon.start()
    bound = record_of(daemon)["endpoint"]
    os.kill(pid, signal.SIGSTOP)
    code, report = daemon.status()
    assert (code, report["state"]) == (4, "unknown"), report
    assert report["message"] == (
        f"pid {pid} holds the lock but does not answer within 2 s on {bound}, the endpoint from its runtime record"
    )
    stopped = daemon.cli("stop")  # SIGTERM twice, then SIGKILL: the daemon cannot remove its record itself
    assert stopped.returncode == 0, stopped.stderr
    assert not is_alive(pid)
    assert not record_file(daemon).exists()
