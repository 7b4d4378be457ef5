"""The JSON-RPC 2.0 specification's own examples (section 7), through the real gateway."""

from __future__ import annotations

import pytest
from rpc_helpers import Raw

# (request text, expected reply or None for no reply) straight from the specification.
EXAMPLES = [
    (
        '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
        {"jsonrpc": "2.0", "result": 19, "id": 1},
    ),
    (
        '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
        {"jsonrpc": "2.0", "result": -19, "id": 2},
    ),
    (
        '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
        {"jsonrpc": "2.0", "result": 19, "id": 3},
    ),
    (
        '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}',
        {"jsonrpc": "2.0", "result": 19, "id": 4},
    ),
    ('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None),
    ('{"jsonrpc": "2.0", "method": "foobar"}', None),
    ('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}', {"jsonrpc": "2.0", "error": {"code": -32601}, "id": "1"}),
    (
        '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
        {"jsonrpc": "2.0", "error": {"code": -32700}, "id": None},
    ),
    ('{"jsonrpc": "2.0", "method": 1, "params": "bar"}', {"jsonrpc": "2.0", "error": {"code": -32600}, "id": None}),
    (
        '[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"}, {"jsonrpc": "2.0", "method"]',
        {"jsonrpc": "2.0", "error": {"code": -32700}, "id": None},
    ),
    ("[]", {"jsonrpc": "2.0", "error": {"code": -32600}, "id": None}),
    ("[1]", [{"jsonrpc": "2.0", "error": {"code": -32600}, "id": None}]),
    ("[1,2,3]", [{"jsonrpc": "2.0", "error": {"code": -32600}, "id": None}] * 3),
    (
        """[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
        ]""",
        [
            {"jsonrpc": "2.0", "result": 7, "id": "1"},
            {"jsonrpc": "2.0", "result": 19, "id": "2"},
            {"jsonrpc": "2.0", "error": {"code": -32600}, "id": None},
            {"jsonrpc": "2.0", "error": {"code": -32601}, "id": "5"},
            {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"},
        ],
    ),
    (
        """[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
        ]""",
        None,
    ),
]


def _strip(reply: object) -> object:
    """The reply with only the error codes kept (messages and data are ours to word)."""
    if isinstance(reply, list):
        return [_strip(item) for item in reply]
    if isinstance(reply, dict) and "error" in reply:
        return {**reply, "error": {"code": reply["error"]["code"]}}
    return reply


@pytest.mark.parametrize(("request_text", "expected"), EXAMPLES)
def test_specification_example(raw: Raw, request_text: str, expected: object) -> None:
    raw.send(request_text)
    # A reply to a marker call sent next proves that nothing came for a notification.
    raw.send({"jsonrpc": "2.0", "method": "get_data", "id": "marker"})
    if expected is not None:
        assert _strip(raw.recv()) == expected
    assert raw.recv() == {"jsonrpc": "2.0", "result": ["hello", 5], "id": "marker"}
