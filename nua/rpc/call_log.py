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
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from nua.rpc import errors

if TYPE_CHECKING:
    from nua.log import Line

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


@runtime_checkable
class LineKeeper(LineWriter, Protocol):
    """A :class:`LineWriter` that also keeps a line as given (a :class:`~nua.actors.log_thread.LogThread`)."""

    def add(self, line: Line) -> None:
        """Keep ``line`` (level, event, fields), its level checked already (:meth:`writes_info`)."""
        ...


# A state-changing call the dispatcher began: who made it (its key's name), its role, the method, when.
# A plain tuple: made once per call, it costs less than a (frozen) dataclass.
CallStarted = tuple[str, str, str, float]


class CallLog:
    """Writes the ``rpc_call`` line of each state-changing call."""

    def __init__(self, lines: LineWriter, clock: Callable[[], float] = time.monotonic) -> None:
        self._lines = lines
        self._writes_info = lines.writes_info
        self._clock = clock
        # A LogThread keeps the line's tuple as made here; another writer gets it as logger.info's arguments.
        self._add: Callable[[Line], None] = lines.add if isinstance(lines, LineKeeper) else self._info

    def begin(self, who: str, role: str, method: str) -> CallStarted | None:
        """A call of ``method`` by ``who`` (its key's name) with ``role`` starts now; ``None`` below the level.

        Below ``info`` no line is written, so nothing is timed or kept for it either.
        The level is looked at here only: a call begun at ``info`` has its line.
        """
        if not self._writes_info():
            return None
        return (who, role, method, self._clock())

    def answered(self, call: CallStarted, error: errors.RpcError | None = None) -> None:
        """``call`` was answered: with a result when ``error`` is ``None``, else with ``error``."""
        who, role, method, started = call
        duration_ms = round((self._clock() - started) * 1000, 3)
        if error is None:
            self._add(
                (
                    "info",
                    "rpc_call",
                    {"who": who, "role": role, "method": method, "outcome": "ok", "duration_ms": duration_ms},
                )
            )
            return
        fields: dict[str, Any] = {
            "who": who,
            "role": role,
            "method": method,
            "outcome": "timeout" if isinstance(error, errors.TimeoutError) else "error",
            "duration_ms": duration_ms,
            "code": errors.error_code(error),
            "error": error.kind,
        }
        if isinstance(error.data, dict):
            names = {key: error.data.get(key) for key in _NAMING_KEYS}
            fields.update({key: n for key, n in names.items() if isinstance(n, str) and len(n) <= _MAX_NAME})
        self._add(("info", "rpc_call", fields))

    def _info(self, line: Line) -> None:
        self._lines.info(line[1], **line[2])


__all__ = ["CallLog", "CallStarted", "LineKeeper", "LineWriter"]
