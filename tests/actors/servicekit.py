"""A service actor under test, with its process loop, manual timers and a journal of its states.

Every wait is on an event: the observer records each state change under a
condition that the test waits on; the process loop tells when output has ended.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pykka

from nua.actors.events import EventHub
from nua.actors.messages import Exited
from nua.actors.process_loop import ProcessLoop
from nua.actors.service import Service, ServiceHost, ServiceStatus
from nua.actors.supervised import ChildContext
from nua.actors.timers import ManualTimers
from nua.service_settings import ServiceConfig, parse_service

WAIT_S = 10.0
PYTHON = sys.executable


class Journal:
    """Each (service, state) change, in order, and a way to wait for one."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, service: str, state: str) -> None:
        with self._cond:
            self.changes.append((service, state))
            self._cond.notify_all()

    def wait_for(self, state: str, count: int = 1, service: str | None = None, timeout: float = WAIT_S) -> None:
        """Until ``state`` has been entered ``count`` times (by ``service``, if given)."""

        def seen() -> bool:
            return sum(1 for s, st in self.changes if st == state and service in (None, s)) >= count

        with self._cond:
            if not self._cond.wait_for(seen, timeout):
                msg = f"{state} x{count} not seen within {timeout} s; changes: {self.changes}"
                raise AssertionError(msg)

    def states(self, service: str | None = None) -> list[str]:
        with self._cond:
            return [st for s, st in self.changes if service in (None, s)]


def config(name: str, command: Any, **keys: Any) -> ServiceConfig:
    """A checked config, as the settings file would give it (``user`` filled in when running as root)."""
    import os  # noqa: PLC0415

    table = {"command": command, **keys}
    if os.geteuid() == 0:
        table.setdefault("user", "root")
    made, problems = parse_service(name, table, "test")
    assert made is not None, problems
    return made


class Harness:
    """A process loop, manual timers and the services started under them; all stopped at the end."""

    def __init__(self, root: Path) -> None:
        self.loop = ProcessLoop()
        self.loop.start()
        self.timers = ManualTimers()
        self.journal = Journal()
        self.exits: list[Exited] = []
        self.events = EventHub(boot="services")
        self.host = ServiceHost(
            self.loop,
            self.timers,
            log_dir=root / "log" / "services",
            record_dir=root / "run" / "services",
            clock=lambda: self.timers.now,
            observer=self.journal,
            events=self.events,
        )
        self.refs: list[pykka.ActorRef[Any]] = []

    def start(self, made: ServiceConfig) -> pykka.ActorRef[Any]:
        ref = Service.start(ChildContext(made.name, 1, self.exits.append), made, self.host)
        self.refs.append(ref)
        return ref

    def status(self, ref: pykka.ActorRef[Any]) -> dict[str, Any]:
        return dict(ref.ask(ServiceStatus(), timeout=WAIT_S))

    def log_path(self, name: str) -> Path:
        return self.host.log_dir / f"{name}.log"

    def close(self) -> None:
        for ref in reversed(self.refs):
            if ref.is_alive():
                ref.stop(timeout=WAIT_S * 3)
        self.loop.stop()


@contextmanager
def harness(root: Path) -> Iterator[Harness]:
    made = Harness(root)
    try:
        yield made
    finally:
        made.close()
