"""Random bytes, random JSON and random JSON-RPC shapes at a live gateway.

After each random message, a well-formed request must still get its correct
reply (on the same connection and on another), and the gateway stays up.
The hostile cases: any Unicode, lone surrogates included (written as the
``\\ud800`` escapes JSON allows), objects with repeated keys at any depth, and
any layout of frames (empty frames, a REQ delimiter or not, extra frames); after
each, the gateway's restart count is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rpc_helpers import Raw, Tree, gateway_restarts, make_settings, start_tree

from nua.rpc import errors

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
methods = st.sampled_from(["test_add", "test_divide", "user_count", "setting_get", "rpc_describe", "nope", "sum"])
ids = (
    st.none()
    | st.integers()
    | st.text(max_size=5)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.lists(st.integers())
)
shapes = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "1.0", 2])},
    optional={"method": methods | json_values, "params": json_values | st.lists(json_values, max_size=3), "id": ids},
)
messages = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | shapes.map(lambda v: json.dumps(v).encode())
    | st.lists(shapes | json_values, max_size=5).map(lambda v: json.dumps(v).encode())
)


# Text with lone surrogates among ordinary characters; json.dumps writes each as a \\udXXX escape.
any_text = st.lists(st.text(max_size=3) | st.integers(0xD800, 0xDFFF).map(chr) | st.characters(), max_size=4).map(
    "".join
)


def _object_text(pairs: list[tuple[str, str]]) -> str:
    """A JSON object from ``(key, value text)`` pairs, repeated keys kept (json.dumps would merge them)."""
    return "{" + ",".join(f"{json.dumps(key)}:{value}" for key, value in pairs) + "}"


json_texts = st.recursive(
    (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text).map(
        json.dumps
    ),
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]")
        | st.lists(st.tuples(st.sampled_from(["a", "b", "id"]) | any_text, inner), max_size=4).map(_object_text)
    ),
    max_leaves=10,
)
request_keys = st.sampled_from(["jsonrpc", "method", "params", "id"])
request_values = {
    "jsonrpc": st.just('"2.0"'),
    "method": (methods | any_text).map(json.dumps),
    "params": json_texts,
    "id": (st.integers() | any_text).map(json.dumps),
}
_request_pairs = request_keys.flatmap(lambda key: request_values[key].map(lambda value: (key, value)))
# Request objects with unique keys (reaching the checks of strings), and with keys that may repeat.
hostile_requests = st.lists(_request_pairs, min_size=1, max_size=4, unique_by=lambda pair: pair[0]).map(
    lambda pairs: _object_text([("jsonrpc", '"2.0"'), *(pair for pair in pairs if pair[0] != "jsonrpc")])
) | st.lists(_request_pairs, min_size=1, max_size=6).map(_object_text)
hostile_messages = (
    json_texts | hostile_requests | st.lists(hostile_requests, min_size=1, max_size=3).map(lambda r: f"[{','.join(r)}]")
).map(str.encode)
frames = st.lists(st.just(b"") | st.binary(max_size=16) | hostile_messages, min_size=1, max_size=6)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tree, Raw, Raw]]:
    tree = start_tree(make_settings(tmp_path_factory.mktemp("fuzz")))
    fuzzer, witness = Raw(tree.endpoint), Raw(tree.endpoint)
    yield tree, fuzzer, witness
    fuzzer.close()
    witness.close()
    tree.root.stop(timeout=30)


def _replies_until(fuzzer: Raw, request_id: str) -> Any:
    """Read the fuzzer's replies (each of JSON-RPC shape) up to the one with ``request_id``; return that one."""
    while True:
        assert fuzzer.socket.poll(5000), "no reply"
        reply = json.loads(fuzzer.socket.recv_multipart()[-1])  # a REQ-style message is answered [b"", reply]
        assert _is_reply_shape(reply)
        if isinstance(reply, dict) and reply.get("id") == request_id:
            return reply


def _check_still_served(tree: Tree, fuzzer: Raw, witness: Raw, n: int) -> None:
    """Every reply of the case has come; the check is answered right; the gateway was never restarted.

    The random calls that read (``user_count``, ``setting_get``) are answered by
    the DB reader, possibly after an inline check: a read sent last is answered
    after them (the reader takes its mailbox in order), so none is left to be
    taken for the next case's reply.
    """
    fuzzer.send({"jsonrpc": "2.0", "method": "user_count", "id": "nua-barrier"})
    _replies_until(fuzzer, "nua-barrier")
    fuzzer.send({"jsonrpc": "2.0", "method": "test_add", "params": [n, 1], "id": "nua-check"})
    assert _replies_until(fuzzer, "nua-check")["result"] == n + 1
    assert witness.call({"jsonrpc": "2.0", "method": "test_add", "params": [n, 2], "id": 1})["result"] == n + 2
    assert gateway_restarts(tree) == 0


def _is_reply_shape(reply: Any) -> bool:
    items = reply if isinstance(reply, list) else [reply]
    return all(isinstance(i, dict) and i.get("jsonrpc") == "2.0" and ("result" in i) != ("error" in i) for i in items)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=messages, n=st.integers(-1000, 1000))
def test_random_input_never_hurts_the_gateway(live: tuple[Tree, Raw, Raw], payload: bytes, n: int) -> None:
    tree, fuzzer, witness = live
    fuzzer.send(payload)
    # Whatever came back for the random message is a JSON-RPC reply; the check's reply follows it.
    _check_still_served(tree, fuzzer, witness, n)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=hostile_messages, n=st.integers(-1000, 1000))
def test_hostile_unicode_and_repeated_keys_never_hurt_the_gateway(
    live: tuple[Tree, Raw, Raw], payload: bytes, n: int
) -> None:
    tree, fuzzer, witness = live
    expected = _refusal(payload)
    fuzzer.send(payload)
    if expected is not None:
        assert fuzzer.recv()["error"]["code"] in expected
    _check_still_served(tree, fuzzer, witness, n)


def _refusal(payload: bytes) -> set[int] | None:
    """The codes a single request object must get: refused for a repeated key or a lone surrogate."""
    repeated = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({key for key, _ in pairs}) != len(pairs):
            repeated.append(pairs)
        return dict(pairs)

    try:
        value = json.loads(payload, object_pairs_hook=pairs_hook)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    if repeated:
        return {errors.INVALID_REQUEST}
    if not _all_encodable(value):
        return {errors.INVALID_REQUEST, errors.INVALID_PARAMS}
    return None


def _all_encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=frames, n=st.integers(-1000, 1000))
def test_any_frame_layout_never_hurts_the_gateway(live: tuple[Tree, Raw, Raw], layout: list[bytes], n: int) -> None:
    tree, fuzzer, witness = live
    fuzzer.socket.send_multipart(layout)
    _check_still_served(tree, fuzzer, witness, n)
