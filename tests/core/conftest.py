"""Fixtures of the core tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nua import log


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """The log routed to a file under ``tmp_path`` for the test, to the console again after."""
    path = tmp_path / "logs" / "nua.log"
    log.configure("info", log_file=path)
    yield path
    log.configure("info")
