"""A stable name -> current actor lookup for the whole tree.

A restarted actor is a new actor with a new ref; callers hold a name instead and
resolve it here each time, as Erlang processes use registered names. Supervisors
write it, anyone may read it without a message round trip.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka

# The names the daemon's tree registers its well-known actors under.
ROOT = "root"
DB_WRITER = "db_writer"
DB_READER = "db_reader"
GATEWAY = "gateway"
HTTP = "http"
SENTINEL = "sentinel"


class Directory:
    """Thread-safe map of child ids to the ref of their current incarnation."""

    def __init__(self) -> None:
        self._refs: dict[str, pykka.ActorRef[Any]] = {}
        self._changed = threading.Condition()

    def register(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        with self._changed:
            self._refs[name] = ref
            self._changed.notify_all()

    def unregister(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        """Forget ``name`` if it still points at ``ref`` (a newer incarnation stays)."""
        with self._changed:
            if self._refs.get(name) is ref:
                del self._refs[name]

    def lookup(self, name: str) -> pykka.ActorRef[Any] | None:
        return self._refs.get(name)

    def wait_for(self, name: str, timeout: float, *, not_ref: pykka.ActorRef[Any] | None = None) -> pykka.ActorRef[Any]:
        """The ref registered under ``name`` (other than ``not_ref``), waiting up to ``timeout`` s.

        Raises :class:`LookupError` when none shows up in time.
        """
        with self._changed:
            found = self._changed.wait_for(
                lambda: (ref := self._refs.get(name)) is not None and ref is not not_ref, timeout
            )
            if not found:
                msg = f"no actor registered as {name!r} within {timeout} s"
                raise LookupError(msg)
            return self._refs[name]

    def names(self) -> list[str]:
        return sorted(self._refs)
