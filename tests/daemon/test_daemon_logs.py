"""``nua logs`` and ``nua-orchestrator reload`` on a real daemon: the last lines, a follow across a rotation."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading

import pytest
from daemon_helpers import NUA, WAIT_S, DaemonEnv, is_alive, wait_until

from nua import runtime
from nua.rpc.client import Client


def test_logs_shows_the_last_lines_of_the_daemons_file_timestamp_level_and_event_first(daemon: DaemonEnv) -> None:
    daemon.start()
    shown = daemon.nua("logs", "-n", "3")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 3
    assert lines == daemon.log_file.read_text(encoding="utf-8").splitlines()[-3:]
    assert all(list(json.loads(line))[:3] == ["timestamp", "level", "event"] for line in lines)
    assert daemon.nua("logs", "-n", "0").stdout == "\n"
    bad = daemon.nua("logs", "-n", "lots")
    assert bad.returncode == 2


def test_a_daemon_in_the_foreground_has_no_log_file_and_logs_says_so_in_one_line(daemon: DaemonEnv) -> None:
    process = daemon.spawn("start", "--foreground")
    wait_until(runtime.record_path(daemon.pid_file).exists, what="the foreground daemon's runtime record")
    shown = daemon.nua("logs")
    assert shown.returncode == 1
    (line,) = shown.stderr.splitlines()
    assert f"pid {process.pid}) runs in the foreground" in line
    assert "not to a file" in line
    process.send_signal(signal.SIGTERM)
    assert process.wait(WAIT_S) == 0


def test_reload_reopens_the_log_and_logs_f_follows_into_the_new_file(daemon: DaemonEnv) -> None:
    pid = daemon.start()
    follower = subprocess.Popen(
        [NUA, "--config", str(daemon.config), "logs", "-f", "-n", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=daemon.env(),
    )
    daemon.popens.append(follower)
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()

    def read() -> None:
        assert follower.stdout is not None
        for text in follower.stdout:
            lines.put(text)

    threading.Thread(target=read, daemon=True).start()

    def wait_line(event: str, **fields: object) -> dict[str, object]:
        while True:
            try:
                record = json.loads(lines.get(timeout=WAIT_S))
            except queue.Empty:
                pytest.fail(f"nua logs -f showed no {event} line within {WAIT_S} s (its exit: {follower.poll()})")
            if record.get("event") == event and all(record.get(k) == v for k, v in fields.items()):
                return record

    lines.get(timeout=WAIT_S)  # the last line: the follower has opened the file
    rotated = daemon.log_file.with_name("nua.log.1")
    daemon.log_file.rename(rotated)
    reloaded = daemon.cli("reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert f"reload requested (pid {pid})" in reloaded.stdout
    wait_line("log_reopened")
    with Client(daemon.endpoint, timeout=10) as client:
        client.call("setting_set", "site.name", "after")
    call = wait_line("rpc_call", method="setting_set")
    assert call["outcome"] == "ok"
    assert "log_reopened" in daemon.log_file.read_text(encoding="utf-8"), "the new file holds the lines since"
    assert "settings_reloaded" in daemon.log_file.read_text(encoding="utf-8")
    assert is_alive(pid)


def test_reload_without_a_daemon_exits_7(daemon: DaemonEnv) -> None:
    result = daemon.cli("reload")
    assert result.returncode == 7
    (line,) = result.stderr.splitlines()
    assert "not running" in line
