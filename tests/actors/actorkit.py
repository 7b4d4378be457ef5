"""A supervisor under test and the workers it supervises, for the actor-level tests.

A module of its own rather than ``conftest``: other test folders have a
``conftest`` too, and ``from conftest import`` would depend on collection order.

Every wait is on the system's own state: a worker records the thread it runs in,
so a test can join that very thread; the supervisor answers a :class:`Ping` only
after everything queued before it, so an exit told before a worker's thread ended
has been handled once that thread is joined and a ping answered.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pykka

from nua.actors.directory import Directory
from nua.actors.messages import ChildInfo, Crash, Exited, Ping, WhichChildren
from nua.actors.supervised import ChildContext, SupervisedActor
from nua.actors.supervisor import ChildSpec, Intensity, Supervisor

WAIT_S = 10.0


@dataclass(frozen=True)
class StopSelf:
    """Makes a worker stop on its own: a normal exit."""


@dataclass(frozen=True)
class Hang:
    """Blocks the worker until ``release`` is set: it then ignores its stop."""

    release: threading.Event


class Worker(SupervisedActor):
    """Records its start and stop in a shared journal, and the thread each incarnation runs in."""

    def __init__(
        self,
        context: ChildContext,
        journal: list[tuple[str, str]],
        threads: dict[str, list[threading.Thread]],
        *,
        fail_on_start: bool = False,
    ) -> None:
        super().__init__(context)
        self.journal = journal
        self.threads = threads
        self.fail_on_start = fail_on_start

    def setup(self) -> None:
        self.threads[self.context.child_id].append(threading.current_thread())
        if self.fail_on_start:
            msg = "cannot start"
            raise RuntimeError(msg)
        self.journal.append(("start", self.context.child_id))

    def cleanup(self, error: BaseException | None) -> None:
        if error is None:
            self.journal.append(("stop", self.context.child_id))

    def on_receive(self, message: Any) -> Any:
        match message:
            case StopSelf():
                self.stop()
                return None
            case Hang(release):
                release.wait()
                return None
            case _:
                return super().on_receive(message)


class Tree:
    """A supervisor under test with its directory, journal, workers' threads and exit record."""

    def __init__(self) -> None:
        self.directory = Directory()
        self.journal: list[tuple[str, str]] = []
        self.threads: dict[str, list[threading.Thread]] = defaultdict(list)
        self.exits: list[Exited] = []
        self.exited = threading.Event()
        self.ref: pykka.ActorRef[Any] | None = None

    def worker(self, child_id: str, **options: Any) -> ChildSpec:
        fail = options.pop("fail_on_start", False)
        return ChildSpec(
            child_id,
            lambda ctx: Worker.start(ctx, self.journal, self.threads, fail_on_start=fail),
            **options,
        )

    def supervisor(self, child_id: str, children: list[ChildSpec], **options: Any) -> ChildSpec:
        """A spec of a nested supervisor sharing this tree's directory."""
        options.setdefault("intensity", Intensity(max_restarts=100, max_seconds=5))
        return ChildSpec(child_id, lambda ctx: Supervisor.start(ctx, children, directory=self.directory, **options))

    def root_listener(self, exited: Exited) -> None:
        self.exits.append(exited)
        self.exited.set()

    def start(self, children: list[ChildSpec], **options: Any) -> pykka.ActorRef[Any]:
        options.setdefault("intensity", Intensity(max_restarts=100, max_seconds=5))
        self.ref = Supervisor.start(
            ChildContext("root", 0, self.root_listener), children, directory=self.directory, **options
        )
        self.ref.ask(Ping(), timeout=WAIT_S)
        return self.ref

    @property
    def root(self) -> pykka.ActorRef[Any]:
        assert self.ref is not None
        return self.ref

    def crash(self, child_id: str) -> pykka.ActorRef[Any]:
        """Crash the child from inside and return its replacement once it answers."""
        old = self.directory.wait_for(child_id, WAIT_S)
        old.tell(Crash())
        new = self.directory.wait_for(child_id, WAIT_S, not_ref=old)
        assert new.ask(Ping(), timeout=WAIT_S) is True
        return new

    def thread(self, child_id: str) -> threading.Thread:
        """The thread of the latest incarnation of ``child_id`` (take it before making that one end)."""
        return self.threads[child_id][-1]

    def wait_handled(self, thread: threading.Thread, supervisor: pykka.ActorRef[Any] | None = None) -> None:
        """Wait for an incarnation's ``thread`` to end and its supervisor to have handled its exit.

        The exit is told before the thread ends, so a ping answered after that comes after it.
        """
        thread.join(WAIT_S)
        assert not thread.is_alive(), f"{thread.name} still runs"
        (supervisor or self.root).ask(Ping(), timeout=WAIT_S)

    def children(self, supervisor: pykka.ActorRef[Any] | None = None) -> dict[str, ChildInfo]:
        infos: tuple[ChildInfo, ...] = (supervisor or self.root).ask(WhichChildren(), timeout=WAIT_S)
        return {info.id: info for info in infos}

    def settle(self) -> None:
        """Wait until the supervisor has handled everything sent to it so far."""
        self.root.ask(Ping(), timeout=WAIT_S)

    def refs(self, *ids: str) -> list[pykka.ActorRef[Any] | None]:
        return [self.directory.lookup(i) for i in ids]
