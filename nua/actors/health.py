"""What is wrong with the daemon right now, for ``status`` to show.

An actor that keeps running but cannot do all of its work (the DB writer while
the disk is full or the database is gone) reports the condition here, and clears
it when the cause goes. The daemon is *degraded* while any condition is set.
Like the :class:`~nua.actors.directory.Directory`, it is written by actors and
read by anyone without a message round trip, so a status query never waits
behind the work of the actor it asks about. Each change is published on the
event stream, when there is one: ``daemon.degraded`` (a component's condition is
new or its reason changed) and ``daemon.recovered`` (a condition cleared).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from nua.actors.events import EventHub


@dataclass(frozen=True)
class Condition:
    """One reason the daemon is degraded: who reports it, why, and since when (ISO 8601, UTC)."""

    component: str
    reason: str
    since: str

    def as_dict(self) -> dict[str, str]:
        return {"component": self.component, "reason": self.reason, "since": self.since}


class Health:
    """Thread-safe set of conditions, one per component at most."""

    def __init__(self, events: EventHub | None = None) -> None:
        self._conditions: dict[str, Condition] = {}
        self._lock = threading.Lock()
        self._events = events

    def degrade(self, component: str, reason: str) -> bool:
        """Set ``component``'s condition; ``True`` when it is new or its reason changed (worth a log line)."""
        with self._lock:
            current = self._conditions.get(component)
            if current is not None and current.reason == reason:
                return False
            since = current.since if current is not None else datetime.now(UTC).isoformat(timespec="milliseconds")
            self._conditions[component] = Condition(component, reason, since)
            if self._events is not None:  # under the lock: the stream tells the changes in their order
                self._events.publish("daemon.degraded", component=component, reason=reason, since=since)
            return True

    def recover(self, component: str) -> bool:
        """Clear ``component``'s condition; ``True`` when there was one."""
        with self._lock:
            cleared = self._conditions.pop(component, None)
            if cleared is not None and self._events is not None:
                self._events.publish(
                    "daemon.recovered", component=component, since=cleared.since, degraded=bool(self._conditions)
                )
            return cleared is not None

    def conditions(self) -> list[Condition]:
        """The current conditions, ordered by component."""
        with self._lock:
            return [self._conditions[name] for name in sorted(self._conditions)]

    @property
    def degraded(self) -> bool:
        return bool(self._conditions)


__all__ = ["Condition", "Health"]
