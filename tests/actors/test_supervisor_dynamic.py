"""Dynamic children, driven by messages (asks) as a caller in another thread would.

start_child, terminate_child, restart_child and delete_child; unknown and taken
ids; restart types, intensity, strategies and shutdown order applying to children
added while the supervisor runs; a nested supervisor added that way.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest
from actorkit import WAIT_S, Hang, Tree

from nua.actors.messages import Crash, Ping
from nua.actors.supervised import ChildContext
from nua.actors.supervisor import (
    ChildRunningError,
    ChildSpec,
    DeleteChild,
    DuplicateChildError,
    Intensity,
    Restart,
    RestartChild,
    StartChild,
    StartFailedError,
    Strategy,
    TerminateChild,
    UnknownChildError,
    delete_child,
    restart_child,
    start_child,
    terminate_child,
    which_children,
)


def test_start_child_adds_a_running_child_after_the_others(tree: Tree) -> None:
    tree.start([tree.worker("a")])
    info = start_child(tree.root, tree.worker("d"))
    assert (info.id, info.state, info.restarts, info.last_error) == ("d", "running", 0, None)
    assert info.started_at
    d = tree.directory.wait_for("d", WAIT_S)
    assert d.ask(Ping(), timeout=WAIT_S) is True
    assert [child.id for child in which_children(tree.root)] == ["a", "d"]
    assert tree.journal == [("start", "a"), ("start", "d")]


def test_the_messages_work_without_the_helpers(tree: Tree) -> None:
    tree.start([])
    assert tree.root.ask(StartChild(tree.worker("d")), timeout=WAIT_S).state == "running"
    assert tree.root.ask(TerminateChild("d"), timeout=WAIT_S).state == "stopped"
    assert tree.root.ask(RestartChild("d"), timeout=WAIT_S).state == "running"
    tree.root.ask(TerminateChild("d"), timeout=WAIT_S)
    assert tree.root.ask(DeleteChild("d"), timeout=WAIT_S) is None
    assert which_children(tree.root) == ()


def test_a_taken_id_is_refused_and_the_child_holding_it_is_untouched(tree: Tree) -> None:
    tree.start([tree.worker("a")])
    start_child(tree.root, tree.worker("d"))
    a, d = tree.refs("a", "d")
    for taken in ("a", "d"):
        with pytest.raises(DuplicateChildError, match=f"child '{taken}' already exists \\(running\\)"):
            start_child(tree.root, tree.worker(taken))
    terminate_child(tree.root, "d")
    with pytest.raises(DuplicateChildError, match="already exists \\(stopped\\)"):
        start_child(tree.root, tree.worker("d"))
    assert tree.refs("a") == [a]
    assert d is not None
    assert not d.is_alive()
    assert tree.journal.count(("start", "a")) == 1
    assert tree.journal.count(("start", "d")) == 1
    assert [(c.id, c.state) for c in which_children(tree.root)] == [("a", "running"), ("d", "stopped")]


def test_a_child_that_cannot_start_is_reported_and_not_kept(tree: Tree) -> None:
    tree.start([tree.worker("a")], intensity=Intensity(max_restarts=0, max_seconds=60))
    with pytest.raises(StartFailedError) as caught:
        start_child(tree.root, tree.worker("bad", fail_on_start=True))
    assert caught.value.child_id == "bad"
    assert caught.value.reason == "RuntimeError: cannot start"
    # Not a restart: the supervisor, allowed none, still runs, without the spec.
    assert [c.id for c in which_children(tree.root)] == ["a"]
    assert tree.directory.lookup("bad") is None
    assert tree.root.ask(Ping(), timeout=WAIT_S) is True
    assert start_child(tree.root, tree.worker("bad")).state == "running"  # the id is free again


def test_a_start_function_that_raises_is_reported(tree: Tree) -> None:
    tree.start([])

    def broken(_ctx: ChildContext) -> pykka.ActorRef[Any]:
        msg = "no such program"
        raise FileNotFoundError(msg)

    with pytest.raises(StartFailedError, match="FileNotFoundError: no such program"):
        start_child(tree.root, ChildSpec("x", broken))
    assert which_children(tree.root) == ()


def test_terminate_keeps_the_spec_and_restart_starts_it_again(tree: Tree) -> None:
    tree.start([tree.worker("a")])
    start_child(tree.root, tree.worker("d"))
    first = tree.directory.lookup("d")
    assert first is not None

    stopped = terminate_child(tree.root, "d")
    assert stopped.state == "stopped"
    assert not first.is_alive()
    assert tree.directory.lookup("d") is None
    assert tree.journal[-1] == ("stop", "d")
    assert terminate_child(tree.root, "d").state == "stopped"  # terminating it again is no error

    restarted = restart_child(tree.root, "d")
    assert restarted.state == "running"
    assert restarted.restarts == 0  # asked for, not a restart the supervisor chose
    second = tree.directory.wait_for("d", WAIT_S)
    assert second is not first
    assert second.ask(Ping(), timeout=WAIT_S) is True
    assert [c.id for c in which_children(tree.root)] == ["a", "d"]


def test_a_static_child_can_be_terminated_restarted_and_deleted(tree: Tree) -> None:
    tree.start([tree.worker("a"), tree.worker("b")])
    terminate_child(tree.root, "a")
    assert restart_child(tree.root, "a").state == "running"
    terminate_child(tree.root, "a")
    delete_child(tree.root, "a")
    assert [c.id for c in which_children(tree.root)] == ["b"]


def test_a_running_child_cannot_be_restarted_or_deleted(tree: Tree) -> None:
    tree.start([])
    start_child(tree.root, tree.worker("d"))
    d = tree.directory.lookup("d")
    with pytest.raises(ChildRunningError, match="'d' is running: terminate it first"):
        restart_child(tree.root, "d")
    with pytest.raises(ChildRunningError):
        delete_child(tree.root, "d")
    assert tree.directory.lookup("d") is d
    assert [(c.id, c.state) for c in which_children(tree.root)] == [("d", "running")]


def test_delete_forgets_a_terminated_child(tree: Tree) -> None:
    tree.start([tree.worker("a")])
    start_child(tree.root, tree.worker("d"))
    terminate_child(tree.root, "d")
    delete_child(tree.root, "d")
    assert [c.id for c in which_children(tree.root)] == ["a"]
    with pytest.raises(UnknownChildError):
        restart_child(tree.root, "d")
    assert start_child(tree.root, tree.worker("d")).state == "running"  # the id may be used again


@pytest.mark.parametrize(
    "request_for",
    [terminate_child, restart_child, delete_child],
    ids=["terminate", "restart", "delete"],
)
def test_an_unknown_id_is_an_error_for_the_caller_only(tree: Tree, request_for) -> None:
    tree.start([tree.worker("a")])
    with pytest.raises(UnknownChildError, match="no child 'nope'"):
        request_for(tree.root, "nope")
    assert tree.root.ask(Ping(), timeout=WAIT_S) is True
    assert [(c.id, c.state) for c in which_children(tree.root)] == [("a", "running")]


def test_something_else_than_a_spec_is_refused(tree: Tree) -> None:
    tree.start([])
    with pytest.raises(TypeError, match="StartChild needs a ChildSpec, got str"):
        tree.root.ask(StartChild("d"), timeout=WAIT_S)
    assert tree.root.ask(Ping(), timeout=WAIT_S) is True


def test_a_crashing_dynamic_child_is_restarted_and_counted(tree: Tree) -> None:
    tree.start([tree.worker("a")])
    start_child(tree.root, tree.worker("d"))
    a = tree.directory.lookup("a")
    new = tree.crash("d")
    assert tree.directory.lookup("d") is new
    assert tree.directory.lookup("a") is a
    infos = tree.children()
    assert (infos["d"].state, infos["d"].restarts) == ("running", 1)
    assert infos["d"].last_error == "InjectedFaultError: injected fault"


def test_a_temporary_child_that_ended_stays_listed_and_can_be_restarted_by_request(tree: Tree) -> None:
    tree.start([])
    start_child(tree.root, tree.worker("job", restart=Restart.TEMPORARY))
    thread = tree.thread("job")
    tree.directory.wait_for("job", WAIT_S).tell(Crash())
    tree.wait_handled(thread)
    [ended] = which_children(tree.root)
    assert (ended.id, ended.state, ended.last_error) == ("job", "failed", "InjectedFaultError: injected fault")
    assert tree.directory.lookup("job") is None
    assert restart_child(tree.root, "job").state == "running"
    assert tree.directory.wait_for("job", WAIT_S).ask(Ping(), timeout=WAIT_S) is True


def test_a_terminated_child_is_not_restarted_with_the_others(tree: Tree) -> None:
    tree.start([tree.worker("a")], strategy=Strategy.ONE_FOR_ALL)
    start_child(tree.root, tree.worker("d"))
    start_child(tree.root, tree.worker("e"))
    terminate_child(tree.root, "d")
    tree.journal.clear()
    tree.crash("a")
    tree.settle()
    assert tree.journal == [("stop", "e"), ("start", "a"), ("start", "e")]
    assert tree.children()["d"].state == "stopped"
    assert tree.directory.lookup("d") is None


def test_rest_for_one_takes_dynamic_children_by_their_place(tree: Tree) -> None:
    tree.start([tree.worker("a"), tree.worker("b")], strategy=Strategy.REST_FOR_ONE)
    start_child(tree.root, tree.worker("c"))
    start_child(tree.root, tree.worker("d"))
    tree.journal.clear()
    tree.crash("b")
    tree.settle()
    # b and the children added after it, stopped in reverse and started in order; a untouched.
    assert tree.journal == [("stop", "d"), ("stop", "c"), ("start", "b"), ("start", "c"), ("start", "d")]
    tree.journal.clear()
    tree.crash("c")
    tree.settle()
    assert tree.journal == [("stop", "d"), ("start", "c"), ("start", "d")]
    assert {c.id: c.restarts for c in which_children(tree.root)} == {"a": 0, "b": 1, "c": 2, "d": 2}


def test_one_for_all_restarts_static_children_when_a_dynamic_one_crashes(tree: Tree) -> None:
    tree.start([tree.worker("a"), tree.worker("b")], strategy=Strategy.ONE_FOR_ALL)
    start_child(tree.root, tree.worker("c"))
    tree.journal.clear()
    tree.crash("c")
    tree.settle()
    assert tree.journal == [("stop", "b"), ("stop", "a"), ("start", "a"), ("start", "b"), ("start", "c")]


def test_restart_intensity_exceeded_by_a_dynamic_child_escalates(tree: Tree) -> None:
    tree.start([tree.worker("a")], intensity=Intensity(max_restarts=2, max_seconds=60))
    start_child(tree.root, tree.worker("d"))
    start_child(tree.root, tree.worker("e"))
    tree.crash("d")
    tree.crash("d")
    tree.journal.clear()
    tree.directory.wait_for("d", WAIT_S).tell(Crash())
    assert tree.exited.wait(WAIT_S)
    (exited,) = tree.exits
    assert exited.error is not None
    assert "more than 2 restarts" in exited.error
    assert "d: InjectedFaultError" in exited.error
    # The survivors, dynamic ones included, were stopped in reverse order before escalating.
    assert tree.journal == [("stop", "e"), ("stop", "a")]
    assert not tree.root.is_alive()
    assert tree.directory.names() == []


def test_shutdown_stops_children_added_later_first(tree: Tree) -> None:
    ref = tree.start([tree.worker("a"), tree.worker("b")])
    start_child(tree.root, tree.worker("c"))
    start_child(tree.root, tree.worker("d"))
    terminate_child(tree.root, "c")
    restart_child(tree.root, "c")  # restarted later, but its place is before d
    tree.journal.clear()
    assert ref.stop(timeout=WAIT_S) is True
    assert tree.journal == [("stop", "d"), ("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert tree.directory.names() == []


def test_a_nested_supervisor_added_later_supervises_and_shows_in_the_tree(tree: Tree) -> None:
    tree.start([tree.worker("a")])
    info = start_child(tree.root, tree.supervisor("jobs", [tree.worker("j1")]))
    assert [(c.id, c.state) for c in info.children] == [("j1", "running")]
    jobs = tree.directory.wait_for("jobs", WAIT_S)

    # The nested supervisor takes dynamic children of its own, and restarts them.
    start_child(jobs, tree.worker("j2"))
    tree.crash("j2")
    tree_view = {c.id: c for c in which_children(tree.root)}
    assert [(c.id, c.state, c.restarts) for c in tree_view["jobs"].children] == [
        ("j1", "running", 0),
        ("j2", "running", 1),
    ]

    # Terminating it stops its children, last added first.
    tree.journal.clear()
    terminate_child(tree.root, "jobs")
    assert tree.journal == [("stop", "j2"), ("stop", "j1")]
    assert tree.directory.lookup("j1") is None
    assert tree.directory.lookup("j2") is None
    assert {c.id: c.children for c in which_children(tree.root)} == {"a": (), "jobs": ()}


def test_a_late_exit_of_a_deleted_child_does_not_touch_its_successor(tree: Tree) -> None:
    """A child abandoned at terminate (it ignored its stop) ends only after a new child took its id."""
    tree.start([])
    start_child(tree.root, tree.worker("d", shutdown_s=0.1))
    stuck = tree.directory.wait_for("d", WAIT_S)
    stuck_thread = tree.thread("d")
    release = threading.Event()
    stuck.tell(Hang(release))
    try:
        terminate_child(tree.root, "d")  # gives up after shutdown_s: the old one still runs
        assert stuck.is_alive()
        delete_child(tree.root, "d")
        start_child(tree.root, tree.worker("d"))
        successor = tree.directory.lookup("d")
    finally:
        release.set()
    # Same id, same generation number: only the supervisor's own key tells the two exits apart.
    tree.wait_handled(stuck_thread)
    infos = tree.children()
    assert (infos["d"].state, infos["d"].restarts) == ("running", 0)
    assert tree.directory.lookup("d") is successor
    assert tree.journal.count(("start", "d")) == 2
