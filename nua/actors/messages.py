"""Messages of the supervision protocol, shared by every supervised actor.

Small frozen dataclasses: what travels between actor threads is data, never a
reference to another actor's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Ping:
    """Answered with ``True`` by any supervised actor: a readiness and liveness check."""


@dataclass(frozen=True)
class Crash:
    """Makes the receiving actor raise :class:`InjectedFault` (fault injection for tests).

    Sent with ``tell`` it kills the actor, as a bug in a ``tell`` would.
    """

    reason: str = "injected fault"


@dataclass(frozen=True)
class Exited:
    """A supervised actor's thread ended; sent to its supervisor by the actor itself.

    ``error`` is ``None`` for a normal stop, else what killed it. ``generation``
    tells a restarted child's exit from the exit of the one it replaced.
    """

    child_id: str
    generation: int
    error: str | None


@dataclass(frozen=True)
class WhichChildren:
    """Asks a supervisor for its children as a list of :class:`ChildInfo`."""


@dataclass(frozen=True)
class ChildInfo:
    """One node of the actor tree, as ``which_children()`` and the daemon's status show it."""

    id: str
    state: str
    restarts: int
    started_at: str | None
    last_error: str | None
    children: tuple[ChildInfo, ...] = field(default=())
    # What the child says of itself beyond the actor's state (a service: its process's figures).
    detail: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, object]:
        shown: dict[str, object] = {
            "id": self.id,
            "state": self.state,
            "restarts": self.restarts,
            "started_at": self.started_at,
            "last_error": self.last_error,
            "children": [child.as_dict() for child in self.children],
        }
        if self.detail is not None:
            shown["detail"] = dict(self.detail)
        return shown
