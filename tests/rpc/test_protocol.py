"""Decoding and encoding without ZeroMQ: no input makes the protocol raise."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nua.rpc import errors
from nua.rpc.protocol import BadRequest, Batch, GuardedProtocol, encode_error, encode_result

PROTOCOL = GuardedProtocol()


def test_request_fields() -> None:
    request = PROTOCOL.decode(b'{"jsonrpc": "2.0", "method": "m", "params": {"a": 1}, "id": "x"}')
    assert (request.method, request.args, request.kwargs, request.unique_id, request.one_way) == (
        "m", [], {"a": 1}, "x", False,
    )  # fmt: skip


def test_notification_only_without_id() -> None:
    assert PROTOCOL.decode(b'{"jsonrpc": "2.0", "method": "m"}').one_way is True
    assert PROTOCOL.decode(b'{"jsonrpc": "2.0", "method": "m", "id": null}').one_way is False


def test_bad_member_keeps_its_id() -> None:
    bad = PROTOCOL.decode(b'{"jsonrpc": "2.0", "params": [], "id": 5}')
    assert isinstance(bad, BadRequest)
    assert (bad.error.code, bad.id) == (errors.INVALID_REQUEST, 5)


@pytest.mark.parametrize(
    ("data", "code"), [(b"\xff", errors.PARSE_ERROR), (b"[]", errors.INVALID_REQUEST), (b"{", errors.PARSE_ERROR)]
)
def test_parse_request_raises_only_rpc_errors(data: bytes, code: int) -> None:
    with pytest.raises(errors.RpcError) as caught:
        PROTOCOL.parse_request(data)
    assert caught.value.code == code


def test_unserialisable_result_becomes_internal_error() -> None:
    reply = json.loads(encode_result(1, float("inf")))
    assert reply["error"]["code"] == errors.INTERNAL_ERROR
    assert json.loads(encode_error(None, errors.BusyError("busy", {"n": 1}))) == {
        "jsonrpc": "2.0", "id": None, "error": {"code": errors.BUSY, "message": "busy", "data": {"n": 1}},
    }  # fmt: skip


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_input_decodes_without_raising(data: bytes) -> None:
    decoded = PROTOCOL.decode(data)
    members = decoded.members if isinstance(decoded, Batch) else (decoded,)
    for member in members:
        if isinstance(member, BadRequest):
            json.loads(encode_error(member.id, member.error))  # always encodable
        else:
            assert isinstance(member.method, str)


@pytest.mark.parametrize(
    ("payload", "code", "reply_id", "data"),
    [
        (rb'{"jsonrpc":"2.0","method":"m\udbff","id":1}', errors.INVALID_REQUEST, 1, None),
        (rb'{"jsonrpc":"2.0","method":"m","id":"\ud800x"}', errors.INVALID_REQUEST, None, None),
        (rb'{"jsonrpc":"2.0","method":"m","params":[0,["\ud800"]],"id":2}', errors.INVALID_PARAMS, 2, {"param": 1}),
        (
            rb'{"jsonrpc":"2.0","method":"m","params":{"k":{"\uDC00":1}},"id":3}',
            errors.INVALID_PARAMS,
            3,
            {"param": "k"},
        ),
        (rb'{"jsonrpc":"2.0","method":"m","id":1,"method":"n"}', errors.INVALID_REQUEST, None, None),
        (rb'{"jsonrpc":"2.0","method":"m","params":[{"a":1,"a":1}],"id":1}', errors.INVALID_REQUEST, None, None),
    ],
)
def test_unencodable_strings_and_repeated_keys_are_refused(
    payload: bytes, code: int, reply_id: object, data: object
) -> None:
    decoded = PROTOCOL.decode(payload)
    assert isinstance(decoded, BadRequest)
    assert (decoded.error.code, decoded.id, decoded.error.data) == (code, reply_id, data)
    json.loads(encode_error(decoded.id, decoded.error))  # the error reply always encodes


def test_surrogate_pairs_and_escaped_backslashes_are_ordinary_text() -> None:
    pair = PROTOCOL.decode(rb'{"jsonrpc":"2.0","method":"m","params":["\ud83d\ude00"],"id":1}')
    assert pair.args == ["\N{GRINNING FACE}"]
    escaped = PROTOCOL.decode(rb'{"jsonrpc":"2.0","method":"m","params":["\\ud800"],"id":1}')
    assert escaped.args == ["\\ud800"]  # a backslash, then letters: no surrogate at all


def test_replies_that_cannot_be_encoded_never_raise() -> None:
    assert json.loads(encode_result(1, "\ud800"))["error"]["code"] == errors.INTERNAL_ERROR
    assert json.loads(encode_error(1, errors.ApplicationError("x", {"bad": "\udfff"})))["error"]["code"] == (
        errors.INTERNAL_ERROR
    )
    assert json.loads(encode_error("\ud800", errors.ApplicationError("x")))["id"] is None
