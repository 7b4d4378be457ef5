"""A pykka future that can call back when it resolves.

pykka futures have no done-callback, yet the RPC gateway must reply to a client
the moment the owning actor answers, without a thread blocked on each call. Every
actor in nua creates its reply futures with this class, so whoever asks a nua actor
(``ask(..., block=False)``) may register a callback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeAlias

import pykka

OptExcInfo: TypeAlias = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


class NotifyingFuture(pykka.ThreadingFuture[Any]):
    """A :class:`pykka.ThreadingFuture` with :meth:`add_done_callback`."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[NotifyingFuture], None]] = []
        self._callbacks_lock = threading.Lock()
        self._done = False

    def add_done_callback(self, callback: Callable[[NotifyingFuture], None]) -> None:
        """Call ``callback(self)`` once the future has a value or an exception.

        It runs in the thread that resolves the future (the actor's), or right away
        in the caller's thread if the future is already resolved; it must be quick.
        """
        with self._callbacks_lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback(self)

    def set(self, value: Any | None = None) -> None:
        super().set(value)
        self._run_callbacks()

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        super().set_exception(exc_info)
        self._run_callbacks()

    def _run_callbacks(self) -> None:
        with self._callbacks_lock:
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)
