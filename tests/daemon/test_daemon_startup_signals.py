"""Signals that reach ``start --foreground`` while it starts are acted on once it can, never fatal.

Only the interpreter's own start-up, before the entry point's first line, cannot
be covered from inside the program; the tests send their signals as soon as the
entry point has blocked them (seen in ``/proc/PID/status``), and at later phases.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon_helpers import WAIT_S, DaemonEnv, is_alive, wait_until

from nua.daemon import sigmask

RUNS = 4


def mask_of(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1], 16)
    return None


def handled_bits() -> int:
    return sum(1 << (int(signum) - 1) for signum in sigmask.HANDLED)


def masked(process: subprocess.Popen[str]) -> bool:
    """Whether the entry point has blocked the handled signals (or the process already ended)."""
    if process.poll() is not None:
        return True
    blocked = mask_of(process.pid, "SigBlk")
    return blocked is not None and blocked & handled_bits() == handled_bits()


def when_masked(daemon: DaemonEnv, process: subprocess.Popen[str]) -> None:
    wait_until(lambda: masked(process), what="the entry point to block the signals")


def when_locked(daemon: DaemonEnv, process: subprocess.Popen[str]) -> None:
    wait_until(lambda: process.poll() is not None or daemon.pid() == process.pid, what="the pid file")


def serving(daemon: DaemonEnv, process: subprocess.Popen[str]) -> bool:
    return process.poll() is not None or (daemon.socket.is_socket() and daemon.pid() == process.pid)


PHASES: dict[str, Callable[[DaemonEnv, subprocess.Popen[str]], None]] = {
    "entry-point": when_masked,
    "tree-starting": when_locked,
}


@pytest.mark.parametrize("phase", PHASES)
def test_sighup_and_sigterm_during_start_stop_it_gracefully(daemon: DaemonEnv, phase: str) -> None:
    for run in range(RUNS):
        process = daemon.spawn("start", "--foreground")
        PHASES[phase](daemon, process)
        process.send_signal(signal.SIGHUP)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, (run, process.returncode, stderr[-2000:])
        assert "daemon_ready" in stderr, "it starts, then stops"
        assert "shutdown_requested" in stderr
        assert "signal SIGTERM" in stderr
        assert not daemon.pid_file.exists()


@pytest.mark.parametrize("phase", PHASES)
def test_sighup_during_start_is_a_reload_once_it_serves(daemon: DaemonEnv, phase: str) -> None:
    for run in range(RUNS):
        process = daemon.spawn("start", "--foreground")
        PHASES[phase](daemon, process)
        process.send_signal(signal.SIGHUP)
        wait_until(lambda p=process: serving(daemon, p), what="the daemon to serve")
        assert is_alive(process.pid), run
        assert daemon.status()[0] == 0
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=WAIT_S)
        assert process.returncode == 0, (run, process.returncode, stderr[-2000:])
        assert stderr.index("settings_reloaded") > stderr.index("daemon_ready"), "reloaded after the start"
