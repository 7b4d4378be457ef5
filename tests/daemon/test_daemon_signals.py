"""SIGHUP re-reads the settings, SIGUSR1 logs every thread's traceback; the daemon keeps serving."""

from __future__ import annotations

import os
import signal

from daemon_helpers import DaemonEnv, is_alive


def test_sighup_applies_the_log_level_and_names_what_needs_a_restart(daemon: DaemonEnv) -> None:
    pid = daemon.start()
    job = {"schedule": "@daily", "call": "user_count"}
    daemon.write_config(server={"log_level": "debug"}, rpc={"call_timeout_s": 3.0}, jobs={"nightly": job})
    os.kill(pid, signal.SIGHUP)
    reloaded = daemon.wait_for_log("settings_reloaded", pid=pid)
    assert reloaded["log_level"] == "debug"
    not_applied = daemon.wait_for_log("reload_not_applied", pid=pid)
    assert not_applied["keys"] == ["[rpc] call_timeout_s", "[jobs]"]
    assert is_alive(pid)


def test_sighup_log_level_is_in_force(daemon: DaemonEnv) -> None:
    pid = daemon.start()
    daemon.write_config(server={"log_level": "warning"}, zmq={"port": 1})
    os.kill(pid, signal.SIGHUP)
    daemon.wait_for_log("reload_not_applied", pid=pid, keys=["[zmq] port"])
    assert daemon.cli("stop").returncode == 0
    events = daemon.log_events()
    after = events[next(i for i, e in enumerate(events) if e.get("event") == "reload_not_applied") :]
    assert after
    assert all(e["level"] != "info" for e in after), "info lines must be gone at level warning"


def test_sighup_with_a_broken_file_keeps_running(daemon: DaemonEnv) -> None:
    pid = daemon.start()
    daemon.config.write_text("[server]\nlog_level = 'loud'\n")
    os.kill(pid, signal.SIGHUP)
    failed = daemon.wait_for_log("reload_failed", pid=pid)
    assert "log_level" in failed["error"]
    assert is_alive(pid)
    daemon.write_config()
    assert daemon.status()[0] == 0


def test_sigusr1_logs_thread_tracebacks(daemon: DaemonEnv) -> None:
    pid = daemon.start()
    os.kill(pid, signal.SIGUSR1)
    record = daemon.wait_for_log_where(lambda e: str(e.get("event", "")).startswith("Current state of MainThread"))
    assert "_loop" in record["event"], "the main thread's stack shows where it waits"
    assert is_alive(pid)
