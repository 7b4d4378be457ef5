"""Helpers of the data-layer tests: settings for a test database, exit logs, gated writers."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pykka
import pytest

import nua.settings
from nua.actors.db_writer import DbWriter
from nua.actors.messages import Exited
from nua.actors.supervised import ChildContext
from nua.settings import Settings

# Cheap scrypt for tests: the cost parameters are the settings', the code path is the same.
FAST_SCRYPT = {"NUA_SECURITY_SCRYPT_N": "16", "NUA_SECURITY_SCRYPT_R": "1", "NUA_SECURITY_SCRYPT_P": "1"}


def make_settings(db_url: str, tmp_path: Path, **env: str) -> Settings:
    environ = {
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "NUA_DB_URL": db_url,
        **FAST_SCRYPT,
        **env,
    }
    return nua.settings.load(environ=environ)


@dataclass
class ExitLog:
    """Collects the writer's exit reports, as a supervisor would receive them."""

    exits: list[Exited] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, exited: Exited) -> None:
        with self.changed:
            self.exits.append(exited)
            self.changed.notify_all()

    def wait(self, timeout: float = 10.0) -> Exited:
        with self.changed:
            if not self.changed.wait_for(lambda: bool(self.exits), timeout):
                pytest.fail("the actor did not exit")
            return self.exits[-1]


@dataclass
class Gate:
    """Holds a writer's first batch until the test releases it, so that later commands queue behind it."""

    entered: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def hold(self) -> None:
        if not self.released.is_set():
            self.entered.set()
            self.released.wait(30)

    def wait_entered(self) -> None:
        if not self.entered.wait(10):
            pytest.fail("the writer never started its first batch")


class GatedWriter(DbWriter):
    """A DbWriter whose first batch waits at ``gate``: queued commands then form the next batch."""

    def __init__(self, context: ChildContext, settings: Settings, gate: Gate) -> None:
        super().__init__(context, settings)
        self.gate = gate

    def _run(self, batch: list[Any]) -> None:
        self.gate.hold()
        super()._run(batch)


@dataclass
class Writers:
    """Starts DB writers for a test and stops every one of them afterwards."""

    settings: Settings
    refs: list[pykka.ActorRef[Any]] = field(default_factory=list)

    exits: list[ExitLog] = field(default_factory=list)

    def start(
        self, *args: Any, settings: Settings | None = None, actor: type[DbWriter] = DbWriter
    ) -> pykka.ActorRef[Any]:
        """Start ``actor`` (extra ``args`` after the settings); its exits go to ``self.exits[-1]``."""
        exits = ExitLog()
        self.exits.append(exits)
        ref = actor.start(ChildContext("db_writer", len(self.refs) + 1, exits), settings or self.settings, *args)
        self.refs.append(ref)
        return ref

    def stop_all(self) -> None:
        for ref in self.refs:
            ref.stop(block=True, timeout=10)


def every_item(writer: pykka.ActorRef[Any], command: Any) -> list[Any]:
    """Every item of a paged list command, asking page after page as a client does."""
    items: list[Any] = []
    while True:
        page = writer.ask(command)
        items += page["items"]
        if page["next"] is None:
            return items
        command = dataclasses.replace(command, after=page["next"])
