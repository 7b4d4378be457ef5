"""JSON-RPC 2.0 on the wire: guarded decoding of requests and encoding of replies.

Decoding builds on tinyrpc's :class:`~tinyrpc.protocols.jsonrpc.JSONRPCProtocol`
(its request objects and version), but guards every stage itself: tinyrpc's own
``parse_request`` raises out of its batch loop on a non-object member, on bytes
that are not UTF-8 and on an object with ``id`` but no ``method``, and it treats
``"id": null`` as a notification where the specification says it is a request.
Here no input raises: anything that cannot be run becomes a :class:`BadRequest`
that carries the error to reply with.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from tinyrpc.protocols.jsonrpc import JSONRPCProtocol, JSONRPCRequest

from nua.rpc.errors import InternalError, InvalidRequestError, ParseError, RpcError

VERSION = "2.0"
_REQUEST_KEYS = frozenset({"jsonrpc", "method", "params", "id"})


@dataclass(frozen=True, slots=True)
class BadRequest:
    """A message, or a member of a batch, that cannot be run: it is answered with ``error``."""

    error: RpcError
    id: Any = None


@dataclass(frozen=True, slots=True)
class Batch:
    """A JSON array of requests; each member is answered (or not) on its own."""

    members: tuple[JSONRPCRequest | BadRequest, ...]


Decoded: TypeAlias = "JSONRPCRequest | BadRequest | Batch"


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's json accepts them unless told otherwise.
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


# Built once: json.loads/dumps with options build a new decoder/encoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


class GuardedProtocol(JSONRPCProtocol):  # type: ignore[misc] # tinyrpc ships no type hints
    """tinyrpc's JSON-RPC 2.0 protocol whose request parsing never raises."""

    def decode(self, data: bytes) -> Decoded:
        """Parse one message: a request, a batch, or the error to answer it with."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return BadRequest(ParseError("Parse error: the message is not UTF-8", {"offset": exc.start}))
        try:
            parsed = _DECODER.decode(text)
        except (ValueError, RecursionError) as exc:
            # ValueError covers JSONDecodeError, NaN and ints too long to convert.
            return BadRequest(ParseError(f"Parse error: {_first_line(exc)}"))
        if isinstance(parsed, list):
            if not parsed:
                return BadRequest(InvalidRequestError("Invalid Request: empty batch"))
            return Batch(tuple(self.decode_member(member) for member in parsed))
        return self.decode_member(parsed)

    def parse_request(self, data: bytes) -> JSONRPCRequest | list[JSONRPCRequest | BadRequest]:
        """tinyrpc's entry point, guarded: raises only :class:`RpcError`, for the whole message."""
        decoded = self.decode(data)
        if isinstance(decoded, BadRequest):
            raise decoded.error
        if isinstance(decoded, Batch):
            return list(decoded.members)
        return decoded

    def decode_member(self, member: Any) -> JSONRPCRequest | BadRequest:
        """One request object, validated against the specification."""
        if not isinstance(member, dict):
            return BadRequest(InvalidRequestError("Invalid Request: a request must be a JSON object"))
        request_id = member.get("id")
        reply_id = request_id if _valid_id(request_id) else None
        problem = _problem(member)
        if problem is not None:
            return BadRequest(InvalidRequestError(f"Invalid Request: {problem}"), reply_id)
        request = self.request_factory()
        request.method = member["method"]
        request.one_way = "id" not in member  # only a missing id is a notification: "id": null is answered
        request.unique_id = request_id
        params = member.get("params")
        if isinstance(params, list):
            request.args = params
        elif isinstance(params, dict):
            request.kwargs = params
        return request


def _problem(member: dict[Any, Any]) -> str | None:  # noqa: PLR0911 - one return per rule of the spec
    """What makes ``member`` an invalid request object, or ``None`` when it is valid."""
    if not _REQUEST_KEYS.issuperset(member):
        extra = next(str(key) for key in member if key not in _REQUEST_KEYS)
        return f"unexpected member {extra!r}"
    if member.get("jsonrpc") != VERSION:
        return '"jsonrpc" must be exactly "2.0"'
    if "method" not in member:
        return '"method" is missing'
    if not isinstance(member["method"], str):
        return '"method" must be a string'
    if not _valid_id(member.get("id")):
        return '"id" must be a string, a number or null'
    if "params" in member and not isinstance(member["params"], list | dict):
        return '"params" must be an array or an object'
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


# -- replies --------------------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode("utf-8")


def encode_error(request_id: Any, error: RpcError) -> bytes:
    """An error reply."""
    return _dumps({"jsonrpc": VERSION, "id": request_id, "error": error.to_dict()})


def encode_result(request_id: Any, result: Any) -> bytes:
    """A success reply; a result that is not JSON becomes an internal error reply instead."""
    try:
        return _dumps({"jsonrpc": VERSION, "id": request_id, "result": result})
    except (TypeError, ValueError, RecursionError) as exc:
        return encode_error(request_id, InternalError(f"the result cannot be sent as JSON: {_first_line(exc)}"))


def encode_batch(parts: Sequence[bytes]) -> bytes:
    """A batch reply from members already encoded."""
    return b"[" + b",".join(parts) + b"]"


__all__ = [
    "VERSION",
    "BadRequest",
    "Batch",
    "Decoded",
    "GuardedProtocol",
    "encode_batch",
    "encode_error",
    "encode_result",
]
