"""The ticker: asleep without an interval, ticking once given one, telling at once when its watch sees a change."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from nua.actors.file_watch import CONTENT, FileWatch
from nua.actors.ticker import Ticker

WAIT_S = 10.0


class Counter(pykka.ThreadingActor):
    """Counts what it is told; sets ``reached`` at the ``until``-th message."""

    def __init__(self, until: int, reached: threading.Event) -> None:
        super().__init__()
        self.until = until
        self.reached = reached
        self.count = 0

    def on_receive(self, message: Any) -> None:
        self.count += 1
        if self.count >= self.until:
            self.reached.set()


@pytest.fixture
def counted() -> Iterator[tuple[pykka.ActorRef[Any], threading.Event]]:
    """An actor that sets the event at its third message."""
    reached = threading.Event()
    ref = Counter.start(3, reached)
    yield ref, reached
    ref.stop()


def test_a_ticker_without_interval_starts_ticking_once_given_one(counted) -> None:
    ref, reached = counted
    ticker = Ticker(ref, "tick", None, "test-ticker")
    ticker.start()
    try:
        ticker.set_interval(0.01)
        assert reached.wait(WAIT_S), "no tick after the interval was set"
    finally:
        ticker.stop()


def test_a_watched_change_is_told_without_an_interval(tmp_path: Path) -> None:
    told = threading.Event()
    ref = Counter.start(1, told)
    path = tmp_path / "nua.pid"
    ticker = Ticker(ref, "tick", None, "test-ticker", watch=FileWatch([path], CONTENT))
    ticker.start()
    try:
        path.write_text("1\n")
        assert told.wait(WAIT_S), "the change was not told"
    finally:
        ticker.stop()
        ref.stop()
