"""The event hub: numbering, bounded history with gap detection, kinds, waiters, listeners."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from nua.actors.events import MAX_PAGE, Event, EventHub

WAIT_S = 10.0


def clock() -> float:
    return 1_700_000_000.25


def test_events_are_numbered_from_one_and_read_after_since() -> None:
    hub = EventHub(clock=clock, boot="b1")
    for n in range(3):
        hub.publish("setting.changed", key=f"k{n}")
    page = hub.read(1)
    assert [event.seq for event in page.events] == [2, 3]
    assert page.events[0].facts == {"key": "k1"}
    assert (page.boot, page.last_seq, page.first_seq, page.missed) == ("b1", 3, 1, 0)
    assert hub.read(3).events == ()


def test_as_json_gives_the_time_in_utc_with_milliseconds() -> None:
    event = EventHub(clock=clock).publish("user.changed", id=4, change="add")
    assert event.as_json() == {
        "seq": 1,
        "time": "2023-11-14T22:13:20.250+00:00",
        "kind": "user.changed",
        "facts": {"id": 4, "change": "add"},
    }


def test_a_reader_left_behind_by_the_bounded_history_learns_how_many_it_missed() -> None:
    hub = EventHub(capacity=3)
    for n in range(8):
        hub.publish("tick", n=n)
    page = hub.read(2)
    assert [event.seq for event in page.events] == [6, 7, 8]
    assert (page.first_seq, page.missed) == (6, 3)
    assert hub.read(0).missed == 5


def test_a_since_from_another_boot_reads_the_whole_history() -> None:
    hub = EventHub()
    hub.publish("actor.started", actor="gateway")
    page = hub.read(500)
    assert [event.seq for event in page.events] == [1]
    assert page.missed == 0


def test_kinds_select_by_exact_name_or_prefix_and_limit_bounds_a_page() -> None:
    hub = EventHub()
    hub.publish("service.state", name="web")
    hub.publish("actor.restarted", actor="db_writer")
    hub.publish("servicex.other")
    hub.publish("service.state", name="worker")
    assert [event.facts["name"] for event in hub.read(0, kinds=["service"]).events] == ["web", "worker"]
    assert [event.kind for event in hub.read(0, kinds=["actor.restarted"]).events] == ["actor.restarted"]
    assert [event.seq for event in hub.read(0, limit=2).events] == [1, 2]
    assert len(EventHub().read(0, limit=10 * MAX_PAGE).events) == 0


def test_wait_returns_when_an_event_arrives_and_false_on_timeout() -> None:
    hub = EventHub()
    assert hub.wait(0, 0.0) is False
    started = threading.Event()
    result: list[bool] = []

    def waiter() -> None:
        started.set()
        result.append(hub.wait(0, WAIT_S))

    thread = threading.Thread(target=waiter)
    thread.start()
    started.wait(WAIT_S)
    hub.publish("daemon.degraded", component="db_writer")
    thread.join(WAIT_S)
    assert result == [True]
    assert hub.wait(0, 0.0) is True


def test_listeners_get_each_event_until_they_unsubscribe_and_a_broken_one_harms_no_publisher() -> None:
    hub = EventHub()
    seen: list[Event] = []

    def broken(event: Event) -> Any:
        raise RuntimeError(event.kind)

    stop = hub.subscribe(seen.append)
    hub.subscribe(broken)
    hub.publish("a")
    stop()
    hub.publish("b")
    assert [event.kind for event in seen] == ["a"]
    assert hub.last_seq == 2


def test_a_history_holds_at_least_one_event() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        EventHub(capacity=0)
