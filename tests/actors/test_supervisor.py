"""The supervisor, driven with messages only: strategies, restart types, intensity, shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from nua.actors._supervised import ChildContext, SupervisedActor
from nua.actors.directory import Directory
from nua.actors.messages import Crash, Exited, Ping, WhichChildren
from nua.actors.supervisor import ChildSpec, Intensity, Restart, Strategy, Supervisor

WAIT_S = 5.0


@dataclass(frozen=True)
class StopSelf:
    """Makes a worker stop on its own: a normal exit."""


@dataclass(frozen=True)
class Hang:
    """Blocks the worker until ``release`` is set: it then ignores its stop."""

    release: threading.Event


class Worker(SupervisedActor):
    """Records its start and stop in a shared journal."""

    def __init__(self, context: ChildContext, journal: list[tuple[str, str]], *, fail_on_start: bool = False) -> None:
        super().__init__(context)
        self.journal = journal
        self.fail_on_start = fail_on_start

    def on_start(self) -> None:
        if self.fail_on_start:
            msg = "cannot start"
            raise RuntimeError(msg)
        self.journal.append(("start", self.context.child_id))

    def on_stop(self) -> None:
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
    """A supervisor under test with its directory, journal and exit record."""

    def __init__(self) -> None:
        self.directory = Directory()
        self.journal: list[tuple[str, str]] = []
        self.exits: list[Exited] = []
        self.exited = threading.Event()
        self.ref: pykka.ActorRef[Any] | None = None

    def worker(self, child_id: str, **options: Any) -> ChildSpec:
        fail = options.pop("fail_on_start", False)
        return ChildSpec(
            child_id,
            lambda ctx: Worker.start(ctx, self.journal, fail_on_start=fail),
            **options,
        )

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

    def crash(self, child_id: str) -> pykka.ActorRef[Any]:
        """Crash the child from inside and return its replacement once it answers."""
        old = self.directory.wait_for(child_id, WAIT_S)
        old.tell(Crash())
        new = self.directory.wait_for(child_id, WAIT_S, not_ref=old)
        assert new.ask(Ping(), timeout=WAIT_S) is True
        return new

    def children(self) -> dict[str, Any]:
        assert self.ref is not None
        return {info.id: info for info in self.ref.ask(WhichChildren(), timeout=WAIT_S)}

    def settle(self) -> None:
        """Wait until the supervisor has handled everything sent to it so far."""
        assert self.ref is not None
        self.ref.ask(Ping(), timeout=WAIT_S)


@pytest.fixture
def tree() -> Iterator[Tree]:
    made = Tree()
    yield made
    if made.ref is not None and made.ref.is_alive():
        made.ref.stop(timeout=WAIT_S)


def refs(tree: Tree, *ids: str) -> list[pykka.ActorRef[Any] | None]:
    return [tree.directory.lookup(i) for i in ids]


def test_children_start_in_order_and_are_running(tree: Tree) -> None:
    tree.start([tree.worker("a"), tree.worker("b"), tree.worker("c")])
    assert tree.journal == [("start", "a"), ("start", "b"), ("start", "c")]
    infos = tree.children()
    assert [infos[i].state for i in "abc"] == ["running"] * 3
    assert all(infos[i].restarts == 0 and infos[i].started_at for i in "abc")


def test_one_for_one_restarts_only_the_crashed_child(tree: Tree) -> None:
    tree.start([tree.worker("a"), tree.worker("b"), tree.worker("c")])
    a, _, c = refs(tree, "a", "b", "c")
    new_b = tree.crash("b")
    assert refs(tree, "a", "b", "c") == [a, new_b, c]
    infos = tree.children()
    assert (infos["a"].restarts, infos["b"].restarts, infos["c"].restarts) == (0, 1, 0)
    assert infos["b"].last_error == "InjectedFaultError: injected fault"


def test_one_for_all_restarts_every_child_in_order(tree: Tree) -> None:
    tree.start([tree.worker("a"), tree.worker("b"), tree.worker("c")], strategy=Strategy.ONE_FOR_ALL)
    before = refs(tree, "a", "b", "c")
    tree.journal.clear()
    tree.crash("b")
    tree.settle()
    after = refs(tree, "a", "b", "c")
    assert all(old is not new for old, new in zip(before, after, strict=True))
    # The survivors are stopped in reverse order, then everyone starts in order.
    assert tree.journal == [("stop", "c"), ("stop", "a"), ("start", "a"), ("start", "b"), ("start", "c")]
    assert {i.restarts for i in tree.children().values()} == {1}


def test_rest_for_one_restarts_the_child_and_those_after_it(tree: Tree) -> None:
    tree.start([tree.worker("a"), tree.worker("b"), tree.worker("c")], strategy=Strategy.REST_FOR_ONE)
    a, b, c = refs(tree, "a", "b", "c")
    tree.crash("b")
    tree.settle()
    new_a, new_b, new_c = refs(tree, "a", "b", "c")
    assert new_a is a
    assert new_b is not b
    assert new_c is not c


@pytest.mark.parametrize(
    ("restart", "after_crash", "after_normal_stop"),
    [
        (Restart.PERMANENT, "running", "running"),
        (Restart.TRANSIENT, "running", "stopped"),
        (Restart.TEMPORARY, "failed", "stopped"),
    ],
)
def test_restart_types(tree: Tree, restart: Restart, after_crash: str, after_normal_stop: str) -> None:
    tree.start([tree.worker("crashes", restart=restart), tree.worker("stops", restart=restart)])
    crashing, stopping = refs(tree, "crashes", "stops")
    assert crashing is not None
    assert stopping is not None
    crashing.tell(Crash())
    stopping.tell(StopSelf())
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:  # the exits reach the supervisor asynchronously
        infos = tree.children()
        if (infos["crashes"].restarts or infos["crashes"].state != "running") and (
            infos["stops"].restarts or infos["stops"].state != "running"
        ):
            break
    assert infos["crashes"].state == after_crash
    assert infos["stops"].state == after_normal_stop
    assert (tree.directory.lookup("crashes") is not None) == (after_crash == "running")
    assert (tree.directory.lookup("stops") is not None) == (after_normal_stop == "running")


def test_restart_intensity_escalates_to_the_parent(tree: Tree) -> None:
    tree.start([tree.worker("a"), tree.worker("b")], intensity=Intensity(max_restarts=2, max_seconds=60))
    tree.crash("a")
    tree.crash("a")
    tree.journal.clear()
    tree.directory.wait_for("a", WAIT_S).tell(Crash())
    assert tree.exited.wait(WAIT_S)
    (exited,) = tree.exits
    assert exited.child_id == "root"
    assert exited.error is not None
    assert "more than 2 restarts" in exited.error
    assert "a: InjectedFaultError" in exited.error
    assert tree.journal == [("stop", "b")]  # the survivor was stopped before escalating
    assert tree.ref is not None
    assert not tree.ref.is_alive()


def test_escalation_through_two_levels(tree: Tree) -> None:
    inner_directory = tree.directory

    def inner(ctx: ChildContext) -> pykka.ActorRef[Any]:
        return Supervisor.start(
            ctx,
            [tree.worker("w")],
            intensity=Intensity(max_restarts=1, max_seconds=60),
            directory=inner_directory,
        )

    tree.start([tree.worker("first"), ChildSpec("inner", inner)], intensity=Intensity(max_restarts=1, max_seconds=60))
    first_inner = tree.directory.lookup("inner")
    tree.crash("w")  # inner restarts w: 1 restart, within its intensity
    old_w = tree.directory.wait_for("w", WAIT_S)
    old_w.tell(Crash())  # second restart: inner gives up, the root restarts inner
    second_inner = tree.directory.wait_for("inner", WAIT_S, not_ref=first_inner)
    tree.directory.wait_for("w", WAIT_S, not_ref=old_w)
    assert tree.children()["inner"].restarts == 1
    assert "more than 1 restarts" in (tree.children()["inner"].last_error or "")

    tree.crash("w")
    tree.directory.wait_for("w", WAIT_S).tell(Crash())  # inner gives up again: the root's second restart
    assert tree.exited.wait(WAIT_S)
    assert tree.exits[0].error is not None
    assert "inner" in tree.exits[0].error
    assert second_inner is not None
    assert not second_inner.is_alive()
    assert tree.directory.names() == []


def test_start_failure_stops_the_started_children_and_reports(tree: Tree) -> None:
    ref = Supervisor.start(
        ChildContext("root", 0, tree.root_listener),
        [tree.worker("a"), tree.worker("b"), tree.worker("bad", fail_on_start=True), tree.worker("c")],
        directory=tree.directory,
    )
    with pytest.raises(pykka.ActorDeadError):
        ref.ask(Ping(), timeout=WAIT_S)
    assert tree.exited.wait(WAIT_S)
    assert tree.journal == [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")]
    assert tree.exits[0].error == "StartFailedError: child 'bad' failed to start: RuntimeError: cannot start"
    assert tree.directory.names() == []


def test_shutdown_stops_children_in_reverse_order(tree: Tree) -> None:
    ref = tree.start([tree.worker("a"), tree.worker("b"), tree.worker("c")])
    assert ref.stop(timeout=WAIT_S) is True
    assert tree.journal[3:] == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert tree.exits == [Exited("root", 0, None)]
    assert tree.directory.names() == []


def test_a_child_that_ignores_shutdown_is_abandoned_in_time(tree: Tree) -> None:
    ref = tree.start([tree.worker("a"), tree.worker("stuck", shutdown_s=0.2), tree.worker("c")])
    release = threading.Event()
    stuck = tree.directory.wait_for("stuck", WAIT_S)
    stuck.tell(Hang(release))
    try:
        begun = time.monotonic()
        assert ref.stop(timeout=WAIT_S) is True
        assert time.monotonic() - begun < 2.0
        assert ("stop", "a") in tree.journal  # the children before it were still stopped
        assert ("stop", "stuck") not in tree.journal
        assert stuck.is_alive()
    finally:
        release.set()


def test_lookup_is_stable_across_restarts(tree: Tree) -> None:
    tree.start([tree.worker("a")])
    for _ in range(5):
        new = tree.crash("a")
        assert tree.directory.lookup("a") is new
        assert new.ask(Ping(), timeout=WAIT_S) is True


def test_an_unknown_message_is_an_error_for_the_caller_not_a_crash(tree: Tree) -> None:
    tree.start([tree.worker("a")])
    a = tree.directory.wait_for("a", WAIT_S)
    with pytest.raises(TypeError, match="does not handle object"):
        a.ask(object(), timeout=WAIT_S)
    assert a.ask(Ping(), timeout=WAIT_S) is True


def test_a_thousand_crashes_leave_no_threads_behind(tree: Tree) -> None:
    baseline = set(threading.enumerate())
    tree.start([tree.worker("a")], intensity=Intensity(max_restarts=10_000, max_seconds=60))
    for _ in range(1000):
        tree.crash("a")
    assert tree.children()["a"].restarts == 1000
    assert tree.ref is not None
    tree.ref.stop(timeout=WAIT_S)
    _join_new_threads(baseline)
    assert threading.active_count() == len(baseline)


def _join_new_threads(baseline: set[threading.Thread]) -> None:
    for thread in set(threading.enumerate()) - baseline:
        thread.join(WAIT_S)
