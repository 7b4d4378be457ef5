"""JSON-RPC error codes and the exceptions that carry them, on both sides of the wire.

Each kind of failure has one stable code: the five the JSON-RPC 2.0 specification
defines, and nua's application errors in the -32000..-32099 range that the
specification reserves for servers. A client can act on the code alone (retry on
``BUSY`` or ``UNAVAILABLE``, fix the field named in ``data`` on ``INVALID_PARAMS``)
and show ``message`` to a human.

This module imports nothing beyond the standard library: the client and the CLI
use it and must start fast.

=======  ==================  ========================================================
code     kind                meaning
=======  ==================  ========================================================
-32700   parse_error         the message is not UTF-8 JSON
-32600   invalid_request     the JSON is not a valid request object (or batch); also
                             an object repeating a key (anywhere in the message) and
                             a lone surrogate (``"\\ud800"``) outside ``params``
-32601   method_not_found    no such method; ``data.method`` names it
-32602   invalid_params      wrong number, names or types of arguments, or a bad
                             field value; ``data`` names the ``param`` or ``field``;
                             also a lone surrogate in ``params``
-32603   internal_error      a bug or a database failure; details are in the log
                             (also: a reply that could not be encoded or sent)
-32000   application_error   a method failed for a reason without its own code
-32001   not_found           the row does not exist; ``data``: entity and key
-32002   conflict            a unique field is taken; ``data``: entity, field, value
-32003   busy                too many calls in flight: from all clients
                             (``data.max_in_flight``) or from this client
                             (``data.max_in_flight_per_client``, each member of a
                             batch counting); retry once replies have come back
-32004   timeout             no result within ``rpc.call_timeout_s``; work not yet
                             started is cancelled, offloaded work that goes on is
                             refused before it reaches an actor; a call an actor
                             already holds may still complete, its result dropped
-32005   unavailable         the actor owning the method is restarting; retry
-32006   division_by_zero    ``test_divide`` with a zero divisor
-32007   too_large           the message exceeds ``rpc.max_message_bytes``
                             (``data.max_message_bytes``; ``id`` null, nothing of
                             the message echoed), or the reply would exceed
                             ``rpc.max_reply_bytes`` (``data.max_reply_bytes``):
                             ask for less, paging with ``limit`` and ``after``;
                             or a batch holds more than 10,000 calls
                             (``data.max_batch``, ``id`` null, none run)
-32008   forbidden           the caller's key lacks the role the method needs
                             (``data``: method, role_needed, and the caller's
                             key and role), or the method declares no role
                             (denied to everyone); nothing was run
=======  ==================  ========================================================

Not errors, because no reply can carry them: a message whose frames are not
``[payload]`` or ``["", payload]`` (as a DEALER or a REQ socket sends them) is
dropped unanswered; a frame over ``rpc.hard_max_message_bytes`` makes ZeroMQ drop
the connection; replies beyond ``zmq.send_hwm`` queued for a client that does not
read are dropped; a connection past ``zmq.max_clients`` is refused during its
handshake, so the client sees no reply (a timeout).
"""

from __future__ import annotations

from typing import Any, ClassVar

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
APPLICATION_ERROR = -32000
NOT_FOUND = -32001
CONFLICT = -32002
BUSY = -32003
TIMEOUT = -32004
UNAVAILABLE = -32005
DIVISION_BY_ZERO = -32006
TOO_LARGE = -32007
FORBIDDEN = -32008


# How much of a name the client sent (a method, a member, a parameter) an error repeats:
# enough to recognise it, never the message again (it may be a megabyte long).
SHOWN_MAX = 40


def shown(text: str) -> str:
    """``text`` as an error repeats it: cut to :data:`SHOWN_MAX` characters, marked when cut."""
    return text if len(text) <= SHOWN_MAX else f"{text[:SHOWN_MAX]}... ({len(text)} characters)"


class RpcError(Exception):
    """An error reply: ``code``, a human ``message`` and JSON ``data`` (or ``None``).

    Raised by methods on the server (the gateway turns it into the reply) and by
    :class:`nua.rpc.client.Client` on the client (rebuilt from the reply).
    """

    code: ClassVar[int] = APPLICATION_ERROR
    kind: ClassVar[str] = "application_error"

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, message={self.message!r}, data={self.data!r})"

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` member of a JSON-RPC reply."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(RpcError):
    code = PARSE_ERROR
    kind = "parse_error"


class InvalidRequestError(RpcError):
    code = INVALID_REQUEST
    kind = "invalid_request"


class MethodNotFoundError(RpcError):
    code = METHOD_NOT_FOUND
    kind = "method_not_found"


class InvalidParamsError(RpcError):
    code = INVALID_PARAMS
    kind = "invalid_params"


class InternalError(RpcError):
    code = INTERNAL_ERROR
    kind = "internal_error"


class ApplicationError(RpcError):
    code = APPLICATION_ERROR
    kind = "application_error"


class NotFoundError(RpcError):
    code = NOT_FOUND
    kind = "not_found"


class ConflictError(RpcError):
    code = CONFLICT
    kind = "conflict"


class BusyError(RpcError):
    code = BUSY
    kind = "busy"


class TimeoutError(RpcError):  # noqa: A001 - the RPC kind; the builtin stays reachable as builtins.TimeoutError
    code = TIMEOUT
    kind = "timeout"


class UnavailableError(RpcError):
    code = UNAVAILABLE
    kind = "unavailable"


class DivisionByZeroError(RpcError):
    code = DIVISION_BY_ZERO
    kind = "division_by_zero"


class TooLargeError(RpcError):
    code = TOO_LARGE
    kind = "too_large"


class ForbiddenError(RpcError):
    code = FORBIDDEN
    kind = "forbidden"


_BY_CODE: dict[int, type[RpcError]] = {
    cls.code: cls
    for cls in (
        ParseError,
        InvalidRequestError,
        MethodNotFoundError,
        InvalidParamsError,
        InternalError,
        ApplicationError,
        NotFoundError,
        ConflictError,
        BusyError,
        TimeoutError,
        UnavailableError,
        DivisionByZeroError,
        TooLargeError,
        ForbiddenError,
    )
}


class UnknownCodeError(RpcError):
    """An error reply whose code nua does not define (a plugin's own code, another server)."""

    kind = "unknown"

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message, data)
        self.unknown_code = code

    def to_dict(self) -> dict[str, Any]:
        error = super().to_dict()
        error["code"] = self.unknown_code
        return error


def from_reply(error: Any) -> RpcError:
    """The exception for a reply's ``error`` member, by its code.

    A member that is not a proper error object still yields an exception (an
    :class:`InternalError` saying so), never a crash of the caller.
    """
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return InternalError(f"malformed error reply: {error!r}")
    code, message, data = error["code"], str(error.get("message", "")), error.get("data")
    cls = _BY_CODE.get(code)
    if cls is None:
        return UnknownCodeError(code, message, data)
    return cls(message, data)


def error_code(error: RpcError) -> int:
    """The code ``error`` travels with (a plugin's unknown code included)."""
    return error.unknown_code if isinstance(error, UnknownCodeError) else error.code


__all__ = [
    "APPLICATION_ERROR",
    "BUSY",
    "CONFLICT",
    "DIVISION_BY_ZERO",
    "FORBIDDEN",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "NOT_FOUND",
    "PARSE_ERROR",
    "TIMEOUT",
    "TOO_LARGE",
    "UNAVAILABLE",
    "ApplicationError",
    "BusyError",
    "ConflictError",
    "DivisionByZeroError",
    "ForbiddenError",
    "InternalError",
    "InvalidParamsError",
    "InvalidRequestError",
    "MethodNotFoundError",
    "NotFoundError",
    "ParseError",
    "RpcError",
    "TimeoutError",
    "TooLargeError",
    "UnavailableError",
    "UnknownCodeError",
    "error_code",
    "from_reply",
]
