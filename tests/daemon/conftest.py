"""The ``daemon`` fixture: a :class:`DaemonEnv` whose processes are all ended by pid afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_helpers import DaemonEnv


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonEnv]:
    env = DaemonEnv(tmp_path)
    try:
        yield env
    finally:
        env.kill_all()
