"""Helpers of the outage tests: a clock the test moves, a writer started with it, a SQLite backup."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka
import pytest
from dbkit import ExitLog, Writers

from nua.actors.db_writer import CheckDatabase, DbWriter
from nua.actors.health import Health
from nua.actors.supervised import ChildContext
from nua.model.errors import UnavailableError


class WatchedHealth(Health):
    """A :class:`Health` that also sets ``degraded_event`` when a component degrades: an event to wait on."""

    def __init__(self) -> None:
        super().__init__()
        self.degraded_event = threading.Event()

    def degrade(self, component: str, reason: str) -> bool:
        changed = super().degrade(component, reason)
        self.degraded_event.set()
        return changed


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def start_writer(
    writers: Writers,
    *,
    health: Health,
    clock: Callable[[], float],
    generation: int = 1,
    check_interval_s: float | None = None,
    actor: type[DbWriter] = DbWriter,
) -> pykka.ActorRef[Any]:
    """A writer on ``writers.settings`` with this clock and health; stopped with the others at the end."""
    exits = ExitLog()
    writers.exits.append(exits)
    context = ChildContext("db_writer", generation, exits)
    ref = actor.start(context, writers.settings, health, clock=clock, check_interval_s=check_interval_s)
    writers.refs.append(ref)
    return ref


def retry_now(writer: pykka.ActorRef[Any], clock: FakeClock, seconds: float = 60.0) -> None:
    """Let the backoff pass and have the writer look (as its ticker would), waiting until it has."""
    clock.advance(seconds)
    writer.ask(CheckDatabase(), timeout=10)


def refused(future_or_call: Callable[[], Any]) -> UnavailableError:
    """The UnavailableError that ``future_or_call`` raises."""
    with pytest.raises(UnavailableError) as caught:
        future_or_call()
    return caught.value


def backup(path: Path, to: Path) -> None:
    """A consistent copy of a live SQLite database (its WAL included), through SQLite's backup API."""
    source = sqlite3.connect(path)
    target = sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
