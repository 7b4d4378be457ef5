"""The supervisor, driven with messages only: strategies, restart types, intensity, shutdown.

Its dynamic children have their own module, ``test_supervisor_dynamic``.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest
from actorkit import WAIT_S, Hang, StopSelf, Tree

from nua.actors.messages import Crash, Exited, Ping
from nua.actors.supervised import ChildContext
from nua.actors.supervisor import ChildSpec, Intensity, Restart, Strategy, Supervisor, start_child


def test_children_start_in_order_and_are_running(tree: Tree) -> None:
    tree.start([tree.worker("a"), tree.worker("b"), tree.worker("c")])
    assert tree.journal == [("start", "a"), ("start", "b"), ("start", "c")]
    infos = tree.children()
    assert [infos[i].state for i in "abc"] == ["running"] * 3
    assert all(infos[i].restarts == 0 and infos[i].started_at for i in "abc")


def test_one_for_one_restarts_only_the_crashed_child(tree: Tree) -> None:
    tree.start([tree.worker("a"), tree.worker("b"), tree.worker("c")])
    a, _, c = tree.refs("a", "b", "c")
    new_b = tree.crash("b")
    assert tree.refs("a", "b", "c") == [a, new_b, c]
    infos = tree.children()
    assert (infos["a"].restarts, infos["b"].restarts, infos["c"].restarts) == (0, 1, 0)
    assert infos["b"].last_error == "InjectedFaultError: injected fault"


def test_one_for_all_restarts_every_child_in_order(tree: Tree) -> None:
    tree.start([tree.worker("a"), tree.worker("b"), tree.worker("c")], strategy=Strategy.ONE_FOR_ALL)
    before = tree.refs("a", "b", "c")
    tree.journal.clear()
    tree.crash("b")
    tree.settle()
    after = tree.refs("a", "b", "c")
    assert all(old is not new for old, new in zip(before, after, strict=True))
    # The survivors are stopped in reverse order, then everyone starts in order.
    assert tree.journal == [("stop", "c"), ("stop", "a"), ("start", "a"), ("start", "b"), ("start", "c")]
    assert {i.restarts for i in tree.children().values()} == {1}


def test_rest_for_one_restarts_the_child_and_those_after_it(tree: Tree) -> None:
    tree.start([tree.worker("a"), tree.worker("b"), tree.worker("c")], strategy=Strategy.REST_FOR_ONE)
    a, b, c = tree.refs("a", "b", "c")
    tree.crash("b")
    tree.settle()
    new_a, new_b, new_c = tree.refs("a", "b", "c")
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
@pytest.mark.parametrize("added", ["at-start", "dynamic"])
def test_restart_types(tree: Tree, restart: Restart, after_crash: str, after_normal_stop: str, added: str) -> None:
    specs = [tree.worker("crashes", restart=restart), tree.worker("stops", restart=restart)]
    if added == "at-start":
        tree.start(specs)
    else:
        tree.start([])
        for spec in specs:
            assert start_child(tree.root, spec).state == "running"
    crashing, stopping = tree.refs("crashes", "stops")
    assert crashing is not None
    assert stopping is not None
    threads = [tree.thread("crashes"), tree.thread("stops")]
    crashing.tell(Crash())
    stopping.tell(StopSelf())
    for thread in threads:
        tree.wait_handled(thread)
    infos = tree.children()
    assert infos["crashes"].state == after_crash
    assert infos["stops"].state == after_normal_stop
    assert infos["crashes"].restarts == int(after_crash == "running")
    assert infos["stops"].restarts == int(after_normal_stop == "running")
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
        # The supervisor ends while the stuck child still runs: it gave up on it after its shutdown_s.
        assert ref.stop(timeout=WAIT_S) is True
        assert stuck.is_alive()
        # The others were still stopped, in order, and the stuck one did not get to stop.
        assert tree.journal[-2:] == [("stop", "c"), ("stop", "a")]
        assert ("stop", "stuck") not in tree.journal
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
    tree.start([tree.worker("a")], intensity=Intensity(max_restarts=10_000, max_seconds=60))
    for _ in range(1000):
        tree.crash("a")
    assert tree.children()["a"].restarts == 1000
    incarnations = tree.threads["a"]
    assert len(incarnations) == 1001
    tree.root.stop(timeout=WAIT_S)
    for thread in incarnations:  # each incarnation's own thread, not a process-wide count
        thread.join(WAIT_S)
        assert not thread.is_alive(), thread.name
