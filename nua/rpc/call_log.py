"""One log line per call of a state-changing method, once it is answered: who, method, outcome, duration.

The dispatcher knows each call's caller (its key's name and role), its method
and when its reply leaves; a line written then says what an operator reading the
log wants to know of the daemon's activity, a failed call included. A call
refused for want of a role has its own line (``rpc_denied``, written with its
audit record), so it gets none here. Reads are not logged: they change nothing.

The line never holds the call's params nor the error's message, which may quote
them (an e-mail taken, a key not found): the error's code and kind, and the
field or param it names, say what failed; the audit trail has the (redacted)
params of every change that committed.

The I/O thread only hands the line on: :class:`~nua.actors.log_thread.LogThread`
renders and writes it in a thread of its own (rendering costs about as much as
the gateway's own share of a call).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from nua.rpc import errors

# The ``data`` keys of an error that name what failed, never a value the caller sent.
_NAMING_KEYS = ("field", "param", "entity", "actor")
# A name is short: a longer string there is not one, and is left out.
_MAX_NAME = 64


class LineWriter(Protocol):
    """Where the lines go (a :class:`~nua.actors.log_thread.LogThread`, or a logger)."""

    def info(self, event: str, **fields: Any) -> Any: ...

    def writes_info(self) -> bool:
        """Whether an info line would be written (the log's level allows it)."""
        ...


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A state-changing call the dispatcher began: who made it, which method, when."""

    who: str
    role: str
    method: str
    started: float


class CallLog:
    """Writes the ``rpc_call`` line of each state-changing call."""

    def __init__(self, lines: LineWriter, clock: Callable[[], float] = time.monotonic) -> None:
        self._lines = lines
        self._clock = clock

    def begin(self, who: str, role: str, method: str) -> CallStarted | None:
        """A call of ``method`` by ``who`` (its key's name) with ``role`` starts now; ``None`` below the level.

        Below ``info`` no line is written, so nothing is timed or kept for it either.
        """
        if not self._lines.writes_info():
            return None
        return CallStarted(who, role, method, self._clock())

    def answered(self, call: CallStarted, error: errors.RpcError | None = None) -> None:
        """``call`` was answered: with a result when ``error`` is ``None``, else with ``error``."""
        fields: dict[str, Any] = {
            "who": call.who,
            "role": call.role,
            "method": call.method,
            "outcome": "ok" if error is None else ("timeout" if isinstance(error, errors.TimeoutError) else "error"),
            "duration_ms": round((self._clock() - call.started) * 1000, 3),
        }
        if error is not None:
            fields["code"] = errors.error_code(error)
            fields["error"] = error.kind
            if isinstance(error.data, dict):
                names = {key: error.data.get(key) for key in _NAMING_KEYS}
                fields.update({key: n for key, n in names.items() if isinstance(n, str) and len(n) <= _MAX_NAME})
        self._lines.info("rpc_call", **fields)


__all__ = ["CallLog", "CallStarted", "LineWriter"]
