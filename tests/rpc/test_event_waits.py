"""Long-poll reads of the event hub: answered at once, by the next event they want, or by their timer."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from nua.actors.events import EventHub
from nua.actors.timers import ManualTimers
from nua.rpc.errors import BusyError
from nua.rpc.event_waits import EventWaits


def make(max_waiting: int = 4) -> tuple[EventHub, ManualTimers, EventWaits]:
    hub = EventHub(100, boot="b")
    timers = ManualTimers()
    return hub, timers, EventWaits(hub, timers, max_waiting)


def waiting(result: dict[str, Any] | Future[dict[str, Any]]) -> Future[dict[str, Any]]:
    assert isinstance(result, Future), f"answered at once: {result}"
    return result


def test_events_held_are_answered_at_once() -> None:
    hub, _, waits = make()
    hub.publish("setting.changed", key="a")
    page = waits.read(0, None, 10, 5.0)
    assert isinstance(page, dict)
    assert [e["kind"] for e in page["events"]] == ["setting.changed"]
    assert waits.waiting == 0


def test_a_read_with_nothing_new_waits_until_the_next_event_and_the_timer_thread_answers() -> None:
    hub, timers, waits = make()
    hub.publish("actor.started", actor="x")
    future = waiting(waits.read(1, None, 10, 5.0))
    hub.publish("actor.restarted", actor="x")
    assert not future.done(), "the publisher only hands the read on"
    timers.advance(0)  # the timer thread reads the page
    page = future.result(timeout=0)
    assert [e["seq"] for e in page["events"]] == [2]
    assert waits.waiting == 0
    assert timers.pending() == [], "its timeout was cancelled"


def test_a_read_nothing_answers_gets_an_empty_page_at_its_timeout() -> None:
    _, timers, waits = make()
    future = waiting(waits.read(0, None, 10, 2.5))
    timers.advance(2.4)
    assert not future.done()
    timers.advance(0.1)
    page = future.result(timeout=0)
    assert (page["events"], page["last_seq"], page["boot"]) == ([], 0, "b")


def test_an_event_of_another_kind_does_not_answer_a_read_of_some_kinds() -> None:
    hub, timers, waits = make()
    future = waiting(waits.read(0, ("service",), 10, 5.0))
    hub.publish("setting.changed", key="a")
    timers.advance(0)
    assert not future.done()
    hub.publish("service.state", service="web", state="RUNNING")
    timers.advance(0)
    assert [e["kind"] for e in future.result(timeout=0)["events"]] == ["service.state"]


def test_reads_waiting_are_bounded() -> None:
    _, _, waits = make(max_waiting=2)
    waiting(waits.read(0, None, 10, 5.0))
    waiting(waits.read(0, None, 10, 5.0))
    with pytest.raises(BusyError) as refused:
        waits.read(0, None, 10, 5.0)
    assert refused.value.data == {"max_waiting": 2}


def test_a_zero_timeout_never_waits_and_a_missed_gap_is_answered_at_once() -> None:
    _, _, waits = make()
    assert isinstance(waits.read(0, None, 10, 0.0), dict)
    small = EventHub(2, boot="s")
    gaps = EventWaits(small, ManualTimers(), 4)
    for n in range(5):
        small.publish("setting.changed", key=str(n))
    page = gaps.read(5, None, 10, 5.0)
    assert isinstance(page, Future)  # nothing after 5: it waits
    behind = gaps.read(1, None, 10, 5.0)
    assert isinstance(behind, dict)
    assert (behind["missed"], [e["seq"] for e in behind["events"]]) == (2, [4, 5])


def test_close_stops_listening_and_forgets_the_waits() -> None:
    hub, timers, waits = make()
    future = waiting(waits.read(0, None, 10, 5.0))
    waits.close()
    hub.publish("setting.changed", key="a")
    timers.advance(10)
    assert not future.done()
    assert waits.waiting == 0


def test_a_read_the_dispatcher_gave_up_on_is_dropped_without_failing_the_timer_thread() -> None:
    hub, timers, waits = make()
    future = waiting(waits.read(0, None, 10, 5.0))
    assert future.cancel()  # the call's deadline passed first: the dispatcher cancels its future
    hub.publish("setting.changed", key="a")
    assert timers.advance(0) == 1  # the answer runs, and raises nothing
    assert timers.advance(10) == 0, "its timeout was cancelled"
    assert waits.waiting == 0
