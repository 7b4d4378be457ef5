"""What a start loads and leaves behind: only what serving needs, and the collector as it found it."""

from __future__ import annotations

import gc
from datetime import datetime
from pathlib import Path

import pytest
from daemon_helpers import DaemonEnv

from nua.daemon import control
from nua.daemon.exit_codes import EXIT_NOT_CONFIGURED

# Loaded by nothing a start does (the ORM, another database's dialect, psutil, ctypes'
# library search): each was a measurable part of a start's time and the daemon's memory.
NOT_FOR_A_START = {"sqlalchemy.orm", "sqlalchemy.dialects.postgresql", "psutil", "ctypes.util"}
# Loaded by the daemon only once it has said it is ready, never before (see runner): with
# a SQLite database, a start is ready without SQLAlchemy, pykka, the actors, and structlog
# (its lines wait: nua.log.early), nor cronsim without jobs (nua.schedule). ZeroMQ, ssl and
# hashlib are loaded before the fork, on purpose (see control._start).
AFTER_READY = {
    "sqlalchemy",
    "pykka",
    "structlog",
    "asyncio",
    "cronsim",
    "nua.actors.supervisor",
    "nua.rpc.gateway",
    "nua.rpc.methods.sys",
}


def test_a_start_loads_only_what_ready_needs(daemon: DaemonEnv) -> None:
    # What the `start` command loads, up to its answer: Python's own list of imports
    # (-X importtime, on stderr). The daemon it forks writes no more there.
    result = daemon.cli("start", env=daemon.env(PYTHONPROFILEIMPORTTIME="1"))
    assert result.returncode == 0, result.stderr
    loaded = {
        line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    assert {"nua.daemon.runner", "nua.rpc.bound", "nua.model.sqlite_check", "nua.log"} <= loaded
    # Loaded before the fork on purpose (control._load_before_fork).
    assert {"hashlib", "ssl", "zmq", "decimal"} <= loaded
    assert loaded & (NOT_FOR_A_START | AFTER_READY) == set()
    # structlog's optional pretty output, which nua does not use (see nua.log).
    assert "rich" not in loaded
    # The lines logged before ready were kept, then written in order, each with its own time.
    pid = daemon.pid()
    serving = daemon.wait_for_log("daemon_serving", pid=pid)
    lines = [event for event in daemon.log_events() if event.get("pid") == pid]
    events = [event["event"] for event in lines]
    assert events.index("daemon_starting") < events.index("daemon_ready") < events.index("daemon_serving")
    stamps = [datetime.fromisoformat(event["timestamp"]) for event in lines]
    assert stamps == sorted(stamps)
    assert stamps[0] < datetime.fromisoformat(serving["timestamp"])


def test_a_start_leaves_the_collector_running_in_its_caller(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "nua.toml"
    config.write_text("[security]\nscrypt_n = 1000\n", encoding="utf-8")
    assert gc.isenabled()
    assert control.start(config) == EXIT_NOT_CONFIGURED
    assert gc.isenabled()
    assert "scrypt_n must be a power of two" in capsys.readouterr().err
