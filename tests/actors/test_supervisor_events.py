"""What a supervisor publishes: each child started, exited, restarted (exactly once per restart), stopped."""

from __future__ import annotations

from actorkit import Tree

from nua.actors.events import EventHub
from nua.actors.supervisor import Strategy, terminate_child


def kinds_of(hub: EventHub, kind: str) -> list[dict[str, object]]:
    return [dict(event.facts) for event in hub.read(0).events if event.kind == kind]


def test_each_start_and_each_restart_publishes_one_event(tree: Tree) -> None:
    hub = EventHub(boot="t")
    tree.start([tree.worker("a"), tree.worker("b")], events=hub)
    assert [(f["actor"], f["supervisor"]) for f in kinds_of(hub, "actor.started")] == [("a", "root"), ("b", "root")]
    tree.crash("b")
    tree.settle()
    tree.crash("b")
    tree.settle()
    exited = kinds_of(hub, "actor.exited")
    assert [(f["actor"], f["error"]) for f in exited] == [("b", "InjectedFaultError: injected fault")] * 2
    restarted = kinds_of(hub, "actor.restarted")
    assert [(f["actor"], f["restarts"], f["generation"]) for f in restarted] == [("b", 1, 2), ("b", 2, 3)]
    assert len(kinds_of(hub, "actor.started")) == 2, "a restart is not also a start"
    kinds = [event.kind for event in hub.read(0).events]
    assert kinds.index("actor.exited") < kinds.index("actor.restarted")


def test_a_group_restart_publishes_one_restarted_per_child_restarted(tree: Tree) -> None:
    hub = EventHub(boot="t")
    tree.start([tree.worker("a"), tree.worker("b"), tree.worker("c")], strategy=Strategy.ONE_FOR_ALL, events=hub)
    tree.crash("b")
    tree.settle()
    restarted = kinds_of(hub, "actor.restarted")
    assert sorted(str(f["actor"]) for f in restarted) == ["a", "b", "c"]
    reasons = {f["actor"]: f["reason"] for f in restarted}
    assert reasons["b"] == "InjectedFaultError: injected fault"
    assert reasons["a"] == "restarted with b (one_for_all)"


def test_a_child_terminated_on_request_is_stopped_not_exited(tree: Tree) -> None:
    hub = EventHub(boot="t")
    tree.start([tree.worker("a")], events=hub)
    terminate_child(tree.root, "a")
    assert [f["actor"] for f in kinds_of(hub, "actor.stopped")] == ["a"]
    assert kinds_of(hub, "actor.exited") == []
