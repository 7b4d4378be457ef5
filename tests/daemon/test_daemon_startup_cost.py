"""What a start loads and leaves behind: only what serving needs, and the collector as it found it."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_helpers import DaemonEnv

from nua.daemon import control
from nua.daemon.exit_codes import EXIT_NOT_CONFIGURED

# Loaded by nothing a start does (the ORM, another database's dialect, psutil, ctypes'
# library search): each was a measurable part of a start's time and the daemon's memory.
NOT_FOR_A_START = {"sqlalchemy.orm", "sqlalchemy.dialects.postgresql", "psutil", "ctypes.util"}
# Loaded by the daemon only once it has said it is ready, never before (see runner): with
# a SQLite database, a start is ready without SQLAlchemy, ZeroMQ, pykka and the actors.
AFTER_READY = {"sqlalchemy", "pykka", "zmq", "nua.actors.supervisor", "nua.rpc.gateway", "nua.rpc.methods.sys"}


def test_a_start_loads_neither_the_orm_nor_another_dialect_nor_psutil(daemon: DaemonEnv) -> None:
    # What `start` loads before it forks the daemon: the settings, checked as a start
    # checks them (a SQLite URL, its driver), and the daemon's code up to its readiness.
    code = (
        "import sys\n"
        "from nua import settings\n"
        "from nua.daemon import control, runner\n"
        f"settings.load({str(daemon.config)!r})\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=daemon.env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert {"nua.daemon.runner", "nua.rpc.bound", "nua.model.sqlite_check", "structlog"} <= loaded
    assert loaded & (NOT_FOR_A_START | AFTER_READY) == set()
    # structlog's optional pretty output, which nua does not use (see nua.log).
    assert "rich" not in loaded


def test_a_start_leaves_the_collector_running_in_its_caller(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "nua.toml"
    config.write_text("[security]\nscrypt_n = 1000\n", encoding="utf-8")
    assert gc.isenabled()
    assert control.start(config) == EXIT_NOT_CONFIGURED
    assert gc.isenabled()
    assert "scrypt_n must be a power of two" in capsys.readouterr().err
