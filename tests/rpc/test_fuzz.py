"""Random bytes, random JSON and random JSON-RPC shapes at a live gateway.

After each random message, a well-formed request must still get its correct
reply (on the same connection and on another), and the gateway stays up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rpc_helpers import Raw, Tree, make_settings, start_tree

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


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tree, Raw, Raw]]:
    tree = start_tree(make_settings(tmp_path_factory.mktemp("fuzz")))
    fuzzer, witness = Raw(tree.endpoint), Raw(tree.endpoint)
    yield tree, fuzzer, witness
    fuzzer.close()
    witness.close()
    tree.root.stop(timeout=30)


def _is_reply_shape(reply: Any) -> bool:
    items = reply if isinstance(reply, list) else [reply]
    return all(isinstance(i, dict) and i.get("jsonrpc") == "2.0" and ("result" in i) != ("error" in i) for i in items)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=messages, n=st.integers(-1000, 1000))
def test_random_input_never_hurts_the_gateway(live: tuple[Tree, Raw, Raw], payload: bytes, n: int) -> None:
    _tree, fuzzer, witness = live
    fuzzer.send(payload)
    fuzzer.send({"jsonrpc": "2.0", "method": "test_add", "params": [n, 1], "id": "check"})
    # Whatever came back for the random message is a JSON-RPC reply; the check's reply follows it.
    while True:
        reply = fuzzer.recv()
        assert _is_reply_shape(reply)
        if isinstance(reply, dict) and reply.get("id") == "check":
            assert reply["result"] == n + 1
            break
    assert witness.call({"jsonrpc": "2.0", "method": "test_add", "params": [n, 2], "id": 1})["result"] == n + 2
