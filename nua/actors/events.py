"""The daemon's event stream: every change of state, numbered, in a bounded history.

Actors publish what changed (a child restarted, a service changed state, a job ran,
a setting was committed); readers (the ``events_read`` RPC method, the HTTP event
stream) read what came after the last ``seq`` they saw. Like the
:class:`~nua.actors.health.Health` and the :class:`~nua.actors.directory.Directory`,
the hub is written by actors and read by anyone without a message round trip, so
a publish never waits for a reader and a slow reader never holds up an actor.

The history is a ring of ``capacity`` events: memory stays bounded whatever the
rate. A reader that falls further behind than the ring learns how many events it
missed (``EventPage.missed``) and goes on from the oldest one still held, as a
PostgreSQL logical-replication client learns from a gap in LSNs. The numbering
starts at 1 with each boot of the daemon; ``boot`` names the boot, so a reader
that sees it change starts again from 0 instead of waiting for a ``seq`` the new
daemon will take a long time to reach.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from nua import log
from nua.listeners import Listeners

DEFAULT_CAPACITY = 10_000
# How many events one read returns at most: a reader far behind reads in pages.
MAX_PAGE = 1_000

Listener = Callable[["Event"], None]


@dataclass(frozen=True, slots=True)
class Event:
    """One change of state: its number in this boot, when, what kind, and its facts (JSON values)."""

    seq: int
    at: float
    kind: str
    facts: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The event as its readers receive it: ``time`` in ISO 8601, UTC, milliseconds."""
        stamp = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds")
        return {"seq": self.seq, "time": stamp, "kind": self.kind, "facts": dict(self.facts)}


@dataclass(frozen=True, slots=True)
class EventPage:
    """What one read returns: the events after ``since`` and where the history stands."""

    boot: str
    events: tuple[Event, ...]
    # The newest seq published so far (0: none yet).
    last_seq: int
    # The oldest seq still held (last_seq + 1 while the history is empty).
    first_seq: int
    # Events after ``since`` that fell out of the history before this read.
    missed: int

    def as_json(self) -> dict[str, Any]:
        return {
            "boot": self.boot,
            "events": [event.as_json() for event in self.events],
            "last_seq": self.last_seq,
            "first_seq": self.first_seq,
            "missed": self.missed,
        }


def _new_boot(clock: Callable[[], float]) -> str:
    # Unique enough to tell two lives of a daemon apart: start time and pid.
    return f"{int(clock() * 1000):x}-{os.getpid():x}"


def kind_selected(kind: str, kinds: Collection[str] | None) -> bool:
    """Whether a reader of ``kinds`` (every kind when empty) wants ``kind``.

    A prefix selects the kinds under it: "service" selects "service.state".
    """
    return not kinds or any(kind == wanted or kind.startswith(wanted + ".") for wanted in kinds)


class EventHub:
    """Thread-safe, bounded, numbered history of events with waiters and listeners."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        clock: Callable[[], float] = time.time,
        boot: str | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"an event history holds at least 1 event, not {capacity}")
        self.capacity = capacity
        self.boot = boot if boot is not None else _new_boot(clock)
        self._clock = clock
        self._history: deque[Event] = deque(maxlen=capacity)
        self._last_seq = 0
        self._changed = threading.Condition(threading.Lock())
        self._listeners: Listeners[Listener] = Listeners()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def publish(self, kind: str, **facts: Any) -> Event:
        """Number and keep the event, wake the waiters, hand it to each listener; never blocks on a reader."""
        with self._changed:
            self._last_seq += 1
            event = Event(self._last_seq, self._clock(), kind, facts)
            self._history.append(event)
            self._changed.notify_all()
            listeners = tuple(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a broken reader must not fail the actor that published
                log.get("nua.events").exception("event_listener_failed", kind=kind, seq=event.seq)
        return event

    def read(self, since: int = 0, *, kinds: Collection[str] | None = None, limit: int = MAX_PAGE) -> EventPage:
        """The events numbered after ``since`` (at most ``limit``, those of ``kinds`` if given).

        A ``since`` beyond the last seq (a reader that followed another boot) reads as 0
        would: the whole history, so that no event of this boot is skipped.
        """
        limit = max(1, min(limit, MAX_PAGE))
        with self._changed:
            last = self._last_seq
            first = self._history[0].seq if self._history else last + 1
            if since > last:
                since = 0
            missed = max(0, first - since - 1)
            # Seqs are consecutive: the event after `since` sits at a known index.
            start = max(0, since + 1 - first)
            held = islice(self._history, start, None)
            if kinds:
                wanted = [event for event in held if kind_selected(event.kind, kinds)][:limit]
            else:
                wanted = list(islice(held, limit))
        return EventPage(self.boot, tuple(wanted), last, first, missed)

    def wait(self, since: int, timeout_s: float) -> bool:
        """Wait until an event numbered after ``since`` exists; ``False`` when ``timeout_s`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._last_seq > since or since > self._last_seq, timeout_s)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with each event published from now on; returns the way to stop.

        The listener runs in the publisher's thread, outside the hub's lock: it must only
        hand the event on (put it in a queue, tell an actor), never block or raise.
        """
        with self._changed:  # from the next publish on: none is half handed to it
            return self._listeners.add(listener)
