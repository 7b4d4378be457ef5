"""Long-poll reads of the event hub: a read with nothing new waits as a future, holding no thread.

``events_read`` answers at once when events after ``since`` are held (or some were
missed). Otherwise its call waits, as any call waiting for an actor does: the
method returns a :class:`concurrent.futures.Future` that the dispatcher watches,
so the gateway's I/O thread goes on serving and no pool thread is held. The
future is resolved by whichever comes first:

- the hub's listener (one for all waiting reads, run in the publisher's thread):
  it only takes the reads the event concerns off the waiting list and hands them
  to the timer thread (:mod:`nua.actors.timers`, a delay of 0), which reads the
  page and resolves each future there, so a publishing actor never reads pages
  for readers;
- the read's own timer, after its ``timeout_s``: the page then holds no event,
  and the client asks again.

The reads waiting at once are bounded (``[events] max_waiting``): past it a read
gets a busy error at once. Each also counts as a call in flight for its client
and for the dispatcher's bounds, like any other call. :meth:`EventWaits.close`
(the gateway stopping) unsubscribes; the waiting calls are answered by the
dispatcher's own stop.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from nua.actors.events import Event, EventHub, kind_selected
from nua.actors.timers import Cancel, Timers
from nua.rpc.errors import BusyError


@dataclass(eq=False)
class _Wait:
    since: int
    kinds: tuple[str, ...] | None
    limit: int
    future: Future[dict[str, Any]] = field(default_factory=Future)
    cancel_timer: Cancel | None = None


class EventWaits:
    """The long-poll reads of one gateway waiting for events."""

    def __init__(self, hub: EventHub, timers: Timers, max_waiting: int) -> None:
        self._hub = hub
        self._timers = timers
        self.max_waiting = max_waiting
        self._lock = threading.Lock()
        self._waiting: dict[int, _Wait] = {}
        self._ids = itertools.count()
        self._unsubscribe = hub.subscribe(self._published)

    @property
    def waiting(self) -> int:
        """Reads waiting right now."""
        return len(self._waiting)

    def read(
        self, since: int, kinds: tuple[str, ...] | None, limit: int, timeout_s: float
    ) -> dict[str, Any] | Future[dict[str, Any]]:
        """The page after ``since`` now when it holds something, else a future of it (see the module)."""
        page = self._hub.read(since, kinds=kinds, limit=limit)
        if page.events or page.missed or timeout_s <= 0:
            return page.as_json()
        wait = _Wait(min(since, page.last_seq), kinds, limit)
        with self._lock:
            if len(self._waiting) >= self.max_waiting:
                msg = f"{self.max_waiting} event reads wait already; retry later"
                raise BusyError(msg, {"max_waiting": self.max_waiting})
            wait_id = next(self._ids)
            self._waiting[wait_id] = wait
        wait.cancel_timer = self._timers.call_later(timeout_s, lambda: self._answer(wait_id, timed_out=True))
        if self._hub.last_seq > page.last_seq:  # published between the read and the registration
            self._answer(wait_id)
        return wait.future

    def close(self) -> None:
        """Stop listening; the reads still waiting are forgotten (their calls are answered by the gateway's stop)."""
        self._unsubscribe()
        with self._lock:
            waits = list(self._waiting.values())
            self._waiting.clear()
        for wait in waits:
            if wait.cancel_timer is not None:
                wait.cancel_timer()

    def _published(self, event: Event) -> None:
        """The hub's listener (the publisher's thread): hand the reads ``event`` concerns to the timer thread."""
        with self._lock:
            due = [
                wait_id
                for wait_id, wait in self._waiting.items()
                if wait.since < event.seq and kind_selected(event.kind, wait.kinds)
            ]
        for wait_id in due:
            self._timers.call_later(0.0, lambda wait_id=wait_id: self._answer(wait_id))  # type: ignore[misc]

    def _answer(self, wait_id: int, *, timed_out: bool = False) -> None:
        """Resolve a waiting read with the page as it is now (the timer thread, or a read that raced a publish)."""
        with self._lock:
            wait = self._waiting.pop(wait_id, None)
        if wait is None:
            return  # answered already (its event and its timer both came), or closed
        if wait.cancel_timer is not None and not timed_out:
            wait.cancel_timer()
        if not wait.future.set_running_or_notify_cancel():
            return  # the dispatcher gave up on the call (its deadline, the gateway stopping): no one reads it
        page = self._hub.read(wait.since, kinds=wait.kinds, limit=wait.limit)
        wait.future.set_result(page.as_json())


__all__ = ["EventWaits"]
