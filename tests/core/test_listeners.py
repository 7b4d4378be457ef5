"""Listeners: added and removed from any thread; the owner calls a snapshot."""

from __future__ import annotations

from collections.abc import Callable

from nua.listeners import Listeners


def test_a_listener_is_called_until_removed_and_a_round_keeps_its_snapshot() -> None:
    calls: list[str] = []
    listeners: Listeners[Callable[[], None]] = Listeners()
    remove_a = listeners.add(lambda: calls.append("a"))
    listeners.add(lambda: calls.append("b"))
    round_ = iter(listeners)
    remove_a()  # after the round began: it still calls "a" once
    for listener in round_:
        listener()
    for listener in listeners:
        listener()
    assert calls == ["a", "b", "b"]
    remove_a()  # removing twice is harmless
    assert len(list(listeners)) == 1
