"""Waiting on a condition, without sleeping blindly (as tests/daemon's helpers do)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

WAIT_S = 20.0


def wait_until(condition: Callable[[], Any], timeout: float = WAIT_S, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy; its value. Fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
