"""The callbacks others register with an owner that calls them (the event hub, the token cache).

A leaf: it imports nothing of nua, so that any layer may keep listeners.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

L = TypeVar("L", bound=Callable[..., object])


class Listeners(Generic[L]):
    """Registered callbacks, safe to add and remove from any thread while the owner calls them.

    The owner iterates a snapshot (the tuple held when it starts), so a callback
    added or removed meanwhile takes effect from its next round: one removed may
    still be called once by a round already begun.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: tuple[L, ...] = ()

    def add(self, listener: L) -> Callable[[], None]:
        """Register ``listener``; the function that removes it."""
        with self._lock:
            self._held = (*self._held, listener)

        def remove() -> None:
            with self._lock:
                self._held = tuple(held for held in self._held if held is not listener)

        return remove

    def __iter__(self) -> Iterator[L]:
        return iter(self._held)


__all__ = ["Listeners"]
