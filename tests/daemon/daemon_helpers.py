"""Helpers for real daemon processes, each in its own temporary directory on its own ``ipc://`` endpoint.

A module of its own rather than ``conftest``: other test folders have a
``conftest`` too, and ``from conftest import`` would depend on collection order.

Every process a test starts is remembered and, if still alive at the end, killed
by its pid. Waits are on conditions with deadlines (a process to exit, a line in
the log), never fixed sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import toml

from nua import pidfile
from nua.daemon import control

REPO = Path(__file__).resolve().parents[2]
DAEMON = [sys.executable, "-m", "nua.daemon.cli"]
NUA = str(REPO / "bin" / "nua")
WAIT_S = 15.0
# Longest path an AF_UNIX socket may have, less some room.
MAX_SOCKET_PATH = 100


def wait_until(condition: Callable[[], Any], timeout: float = WAIT_S, what: str = "condition") -> Any:
    """Poll ``condition`` (about an external process) until it is truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def nua_cli(daemon: DaemonEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """``bin/nua --config <ours> ARGS``, without any NUA_ZMQ_* variable."""
    return subprocess.run(
        [str(REPO / "bin" / "nua"), "--config", str(daemon.config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=daemon.env(),
        check=False,
    )


def is_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class DaemonEnv:
    """One daemon's files, settings and processes, all under a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        run_dir = root / "run"
        if len(str(run_dir / "nua.sock")) > MAX_SOCKET_PATH:
            run_dir = Path(tempfile.mkdtemp(prefix="nua-"))
        self.run_dir = run_dir
        self.pid_file = run_dir / "nua.pid"
        self.exit_flag = run_dir / "nua.exit"
        self.socket = run_dir / "nua.sock"
        self.endpoint = f"ipc://{self.socket}"
        self.log_file = root / "log" / "nua.log"
        self.db = root / "nua.db"
        self.config = root / "nua.toml"
        self.keys_dir = root / "keys"
        self.client_key = root / "client" / "client.key_secret"
        self.pids: set[int] = set()
        self.popens: list[subprocess.Popen[str]] = []
        self.values: dict[str, dict[str, Any]] = {}
        self.write_config()

    def write_config(self, **sections: dict[str, Any]) -> None:
        """Write the config file: the test's paths, plus ``sections`` (merged into earlier ones)."""
        for name, values in sections.items():
            self.values.setdefault(name, {}).update(values)
        config: dict[str, dict[str, Any]] = {
            "server": {
                "pid_file": str(self.pid_file),
                "exit_flag": str(self.exit_flag),
                "log_file": str(self.log_file),
                "stop_timeout_s": 5.0,
            },
            # Stock clients talk to it; test_daemon_auth.py sets auth = "curve". Keys stay under root.
            "zmq": {
                "endpoint": self.endpoint,
                "auth": "none",
                "keys_dir": str(self.keys_dir),
                "client_key": str(self.client_key),
            },
            "db": {"url": f"sqlite:///{self.db}"},
            "supervisor": {"shutdown_timeout_s": 2.0},
            # test_add and test_divide: the simplest calls to check that a daemon answers.
            "debug": {"test_methods": True},
        }
        for name, values in self.values.items():
            config.setdefault(name, {}).update(values)
        self.config.write_text(toml.dumps(config), encoding="utf-8")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUA_") and k != "NOTIFY_SOCKET"}
        env["PYTHONPATH"] = str(REPO)
        env.update(extra)
        return env

    def cli(
        self, *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``nua-orchestrator --config <ours> ARGS`` to completion."""
        result = subprocess.run(
            [*DAEMON, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env or self.env(),
            check=False,
        )
        self.remember_daemon()
        return result

    def nua(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``bin/nua --config <ours> ARGS`` to completion (the daemon found through our settings)."""
        return subprocess.run(
            [NUA, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )

    def spawn(self, *args: str, env: dict[str, str] | None = None, config: bool = True) -> subprocess.Popen[str]:
        """Start ``nua-orchestrator ARGS`` without waiting (a foreground daemon, a racing start)."""
        prefix = ["--config", str(self.config)] if config else []
        process = subprocess.Popen(
            [*DAEMON, *prefix, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or self.env(),
        )
        self.popens.append(process)
        self.pids.add(process.pid)
        return process

    def start(self) -> int:
        """``start``, check it worked and wait until the daemon serves (its tree runs); the daemon's pid.

        ``start`` returns once the daemon is ready, before its actor tree runs (see
        README, "Running as a service"): the tests that look at the daemon's inside
        (its actors, its files, a SIGSTOP) begin once it serves. Those of the ready
        window itself run ``cli("start")``.
        """
        result = self.cli("start")
        assert result.returncode == 0, result.stderr + result.stdout
        assert "started" in result.stdout, result.stdout
        pid = self.pid()
        assert pid is not None
        assert is_alive(pid)
        self.wait_for_log("daemon_serving", pid=pid)
        return pid

    def pid(self) -> int | None:
        return pidfile.read_pid(self.pid_file)

    def remember_daemon(self) -> None:
        pid = self.pid()
        if pid is not None and pid != os.getpid():
            self.pids.add(pid)

    def status(self) -> tuple[int, dict[str, Any]]:
        result = self.cli("status", "--json", timeout=20)
        return result.returncode, json.loads(result.stdout)

    def log_events(self) -> list[dict[str, Any]]:
        """The daemon's JSON log lines."""
        if not self.log_file.exists():
            return []
        events = []
        for line in self.log_file.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def wait_for_log(self, event: str, timeout: float = WAIT_S, **fields: Any) -> dict[str, Any]:
        """The first log line with ``event`` whose fields contain ``fields``."""
        return self.wait_for_log_where(
            lambda record: record.get("event") == event and all(record.get(k) == v for k, v in fields.items()),
            timeout,
            what=f"log event {event} {fields}",
        )

    def wait_for_log_where(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT_S, what: str = "a log line"
    ) -> dict[str, Any]:
        """The first log line satisfying ``predicate``, waiting for it to be written."""

        def find() -> dict[str, Any] | None:
            return next((record for record in self.log_events() if predicate(record)), None)

        found: dict[str, Any] = wait_until(find, timeout, what=what)
        return found

    def wait_gone(self, pid: int, timeout: float = WAIT_S) -> None:
        """Wait for ``pid`` to exit, on its pidfd as ``stop`` does (an exited zombie counts as gone)."""
        if not control.wait_gone(pid, timeout):
            pytest.fail(f"timed out after {timeout} s waiting for pid {pid} to exit")

    def kill_all(self) -> None:
        """End, by pid, every process this test started that still runs."""
        self.remember_daemon()
        for process in self.popens:
            if process.poll() is None:
                process.kill()
            process.communicate()
        for pid in self.pids:
            try:
                process = psutil.Process(pid)
                if "nua.daemon.cli" in " ".join(process.cmdline()):
                    process.send_signal(signal.SIGKILL)
                    # A zombie counts as gone: reaping orphans is init's business.
                    self.wait_gone(pid)
            except psutil.Error:
                continue
