"""JSON-RPC 2.0 on the wire: guarded decoding of requests and encoding of replies.

Decoding builds on tinyrpc's :class:`~tinyrpc.protocols.jsonrpc.JSONRPCProtocol`
(its request objects and version), but guards every stage itself: tinyrpc's own
``parse_request`` raises out of its batch loop on a non-object member, on bytes
that are not UTF-8 and on an object with ``id`` but no ``method``, and it treats
``"id": null`` as a notification where the specification says it is a request.
Here no input raises: anything that cannot be run becomes a :class:`BadRequest`
that carries the error to reply with.

Two things JSON allows are refused here, where the request is decoded, because
they would harm later stages: a repeated key in any object (Python keeps the
last one silently, so ``{"method": "user_count", "method": "user_delete_all"}``
would run the second) is an invalid request; a lone surrogate escape
(``"\\ud800"``), which decodes to a string that UTF-8 cannot encode, is an
invalid request in the envelope and invalid params in ``params``. Such a string
would otherwise make the error reply that echoes it fail to encode, or be stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from tinyrpc.protocols.jsonrpc import JSONRPCProtocol, JSONRPCRequest

from nua.model.text import json_encodable as encodable
from nua.model.text import repaired
from nua.rpc.errors import (
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    ParseError,
    RpcError,
    TooLargeError,
    shown,
)

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


class _RepeatedKeyError(ValueError):
    """An object repeats a key: the request is ambiguous."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            msg = f"repeated key {repaired(shown(key))!r} in an object"
            raise _RepeatedKeyError(msg)
        seen.add(key)
    raise AssertionError  # unreachable: dict() dropped a repeated key


# Built once: json.loads/dumps with options build a new decoder/encoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
# A surrogate code point can only come from a \ud800-\udfff escape: valid UTF-8 never
# encodes one. Messages without such an escape (nearly all) skip the walk below.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


class GuardedProtocol(JSONRPCProtocol):  # type: ignore[misc] # tinyrpc ships no type hints
    """tinyrpc's JSON-RPC 2.0 protocol whose request parsing never raises.

    ``max_batch`` bounds the calls of one batch: each member costs the decoding
    thread its checks and its reply, so a message of a megabyte of empty
    objects (350,000 members) would hold that thread for seconds and its
    replies the memory of hundreds of megabytes. A longer batch is answered
    with one too-large error, none of its members run.
    """

    def __init__(self, *args: Any, max_batch: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_batch = max_batch

    def decode(self, data: bytes) -> Decoded:
        """Parse one message: a request, a batch, or the error to answer it with."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return BadRequest(ParseError("Parse error: the message is not UTF-8", {"offset": exc.start}))
        try:
            parsed = _DECODER.decode(text)
        except _RepeatedKeyError as exc:
            return BadRequest(InvalidRequestError(f"Invalid Request: {exc}"))
        except (ValueError, RecursionError) as exc:
            # ValueError covers JSONDecodeError, NaN and ints too long to convert.
            return BadRequest(ParseError(f"Parse error: {_first_line(exc)}"))
        checked = b"\\u" in data and _SURROGATE_ESCAPE.search(data) is not None
        if isinstance(parsed, list):
            return self._batch(parsed, check_strings=checked)
        return self.decode_member(parsed, check_strings=checked)

    def _batch(self, members: list[Any], *, check_strings: bool) -> Batch | BadRequest:
        if not members:
            return BadRequest(InvalidRequestError("Invalid Request: empty batch"))
        if self.max_batch is not None and len(members) > self.max_batch:
            message = f"the batch holds {len(members)} calls, over the most one batch may hold ({self.max_batch})"
            return BadRequest(TooLargeError(f"{message}; send fewer calls per batch", {"max_batch": self.max_batch}))
        return Batch(tuple(self.decode_member(member, check_strings=check_strings) for member in members))

    def parse_request(self, data: bytes) -> JSONRPCRequest | list[JSONRPCRequest | BadRequest]:
        """tinyrpc's entry point, guarded: raises only :class:`RpcError`, for the whole message."""
        decoded = self.decode(data)
        if isinstance(decoded, BadRequest):
            raise decoded.error
        if isinstance(decoded, Batch):
            return list(decoded.members)
        return decoded

    def decode_member(self, member: Any, *, check_strings: bool = True) -> JSONRPCRequest | BadRequest:
        """One request object, validated against the specification.

        ``check_strings=False`` skips the search for unencodable strings: the
        caller knows the message holds none (no surrogate escape in its text).
        """
        if not isinstance(member, dict):
            return BadRequest(InvalidRequestError("Invalid Request: a request must be a JSON object"))
        if check_strings:
            unencodable = _unencodable_envelope(member)
            if unencodable is not None:
                return unencodable
        request_id = member.get("id")
        reply_id = request_id if _valid_id(request_id) else None
        problem = _problem(member)
        if problem is not None:
            return BadRequest(InvalidRequestError(f"Invalid Request: {problem}"), reply_id)
        if check_strings and not encodable(member.get("params")):
            data = {"param": _bad_param(member["params"])}
            return BadRequest(InvalidParamsError(f"Invalid params: {_NOT_UNICODE}", data), reply_id)
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


_NOT_UNICODE = "a string is not valid Unicode (a lone surrogate)"


def _unencodable_envelope(member: dict[str, Any]) -> BadRequest | None:
    """The error for a request whose members other than ``params`` hold a string UTF-8 cannot encode."""
    envelope = [(key, value) for key, value in member.items() if key != "params"]
    if encodable(envelope):
        return None
    request_id = member.get("id")
    reply_id = request_id if _valid_id(request_id) and encodable(request_id) else None
    return BadRequest(InvalidRequestError(f"Invalid Request: {_NOT_UNICODE}"), reply_id)


def _bad_param(params: list[Any] | dict[str, Any]) -> str | int:
    """The name (printable) or position of the first parameter holding an unencodable string."""
    if isinstance(params, list):
        return next(index for index, value in enumerate(params) if not encodable(value))
    name: str = next(repaired(shown(key)) for key, value in params.items() if not encodable((key, value)))
    return name


def _problem(member: dict[Any, Any]) -> str | None:  # noqa: PLR0911 - one return per rule of the spec
    """What makes ``member`` an invalid request object, or ``None`` when it is valid."""
    if not _REQUEST_KEYS.issuperset(member):
        extra = next(str(key) for key in member if key not in _REQUEST_KEYS)
        return f"unexpected member {shown(extra)!r}"
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


# The reply of last resort: it cannot fail to encode, being encoded already.
_UNENCODABLE_ERROR = (
    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error: the reply cannot be encoded"}}'
)


def encode_error(request_id: Any, error: RpcError) -> bytes:
    """An error reply; never raises.

    A method may raise an error whose message or data is not JSON (or holds a
    surrogate): the client then gets a plain internal error instead.
    """
    try:
        return _dumps({"jsonrpc": VERSION, "id": request_id, "error": error.to_dict()})
    except Exception as exc:  # noqa: BLE001 - a method's error data may be anything
        fallback = InternalError(f"the error reply cannot be sent as JSON: {repaired(_first_line(exc))}")
        try:
            return _dumps({"jsonrpc": VERSION, "id": request_id, "error": fallback.to_dict()})
        except Exception:  # noqa: BLE001 - the id itself cannot be encoded
            return _UNENCODABLE_ERROR


def encode_result(request_id: Any, result: Any) -> bytes:
    """A success reply; a result that cannot be encoded becomes an internal error reply instead; never raises.

    Results come from methods (plugins included): whatever their encoding raises
    is caught, not only what JSON's own checks raise.
    """
    try:
        return _dumps({"jsonrpc": VERSION, "id": request_id, "result": result})
    except Exception as exc:  # noqa: BLE001 - any failure to encode is this reply's, never the I/O loop's
        error = InternalError(f"the result cannot be sent as JSON: {repaired(_first_line(exc))}")
        return encode_error(request_id, error)


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
