"""Whether the call an offloaded method serves is still wanted, for the method to ask before it hands work on.

An offloaded method runs in a pool thread, maybe long after its caller was
told "timeout" (the pool was busy, or hashing a password took long). Its
result would be dropped, but what it hands to an actor would still happen: a
``user_add`` whose hash finishes late would still add the user. The dispatcher
runs each offloaded method inside a :class:`CallScope`; :meth:`Services.ask
<nua.rpc.services.Services.ask>` calls :func:`check` first, so that work whose
caller has gone is refused before it reaches an actor.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from nua.rpc.errors import TimeoutError  # noqa: A004 - the RPC kind

_CURRENT: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar("nua_rpc_call", default=None)


class CallScope:
    """One call's deadline, and whether the dispatcher gave up on it (timeout, gateway stopping)."""

    __slots__ = ("_cancelled", "clock", "deadline", "method")

    def __init__(self, method: str, deadline: float, clock: Callable[[], float]) -> None:
        self.method = method
        self.deadline = deadline
        self.clock = clock
        self._cancelled = False

    def cancel(self) -> None:
        """The caller was answered already: nothing this call does later may take effect."""
        self._cancelled = True

    @property
    def wanted(self) -> bool:
        """Whether the caller still waits: not cancelled, and its deadline not passed."""
        return not self._cancelled and self.clock() < self.deadline

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``function`` with this scope current (in the calling thread); a gone caller skips it."""
        if not self.wanted:
            raise self.gone_error()
        token = _CURRENT.set(self)
        try:
            return function(*args, **kwargs)
        finally:
            _CURRENT.reset(token)

    def gone_error(self) -> TimeoutError:
        """The error a call gets when its caller has stopped waiting."""
        return TimeoutError(
            f"{self.method}: its caller stopped waiting; the call was not carried out",
            {"method": self.method},
        )


def check() -> None:
    """Raise :class:`~nua.rpc.errors.TimeoutError` when the current call's caller has stopped waiting.

    Outside an offloaded call (no scope), it does nothing: a method run inline
    asks at once, within its call.
    """
    scope = _CURRENT.get()
    if scope is not None and not scope.wanted:
        raise scope.gone_error()


__all__ = ["CallScope", "check"]
