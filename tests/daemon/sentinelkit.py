"""What the sentinel's actor-level tests share: a listener collecting its shutdown requests."""

from __future__ import annotations

import threading


class Requests:
    """Collects the sentinel's shutdown requests."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.arrived = threading.Event()

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.arrived.set()
