"""Hostile clients against a live gateway: bad strings, bad layouts, big messages, floods, unread replies.

Each test checks the observable outcome (the reply, a counter of ``GatewayInfo``,
a row that is or is not there) and that the gateway was never restarted.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import rpc_test_plugin
import zmq
from rpc_helpers import Raw, Tree, gateway_info, gateway_restarts

from nua.rpc import errors, serving
from nua.rpc import gateway as gateway_module
from nua.rpc import listener as listener_module
from nua.rpc.client import Call, Client, DaemonUnreachableError

REQUEST = {"jsonrpc": "2.0", "method": "test_add", "params": [2, 3], "id": 7}
OK = {"jsonrpc": "2.0", "id": 7, "result": 5}


info = gateway_info


def wait_info(tree: Tree, key: str, predicate: Callable[[int], bool], timeout_s: float = 20.0) -> int:
    """Ask ``GatewayInfo`` until ``predicate(info[key])``: a condition on the I/O thread's counters.

    Each ask is a round trip through the gateway actor; no sleep.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = cast("int", info(tree)[key])
        if predicate(value):
            return value
    msg = f"GatewayInfo {key} never satisfied the condition within {timeout_s} s"
    raise AssertionError(msg)


@pytest.fixture
def watched(tree: Tree) -> Iterator[Tree]:
    """The tree; at the end, the gateway must not have been restarted and must still answer."""
    yield tree
    assert gateway_restarts(tree) == 0
    with tree.client() as client:
        assert client.call("test_add", 1, 1) == 2


# -- strings UTF-8 cannot encode, repeated keys -----------------------------------------------


@pytest.mark.parametrize(
    ("payload", "code", "reply_id"),
    [
        (rb'{"jsonrpc":"2.0","method":"test_add\ud800","params":[1, 2], "id":1}', errors.INVALID_REQUEST, 1),
        (rb'{"jsonrpc":"2.0","method":"test_add","params":[1, 2], "id":"\udfff"}', errors.INVALID_REQUEST, None),
        (rb'{"jsonrpc":"2.0","method":"test_add","params":[1, 2], "id":1, "\ud800":1}', errors.INVALID_REQUEST, 1),
        (rb'{"jsonrpc":"2.0","method":"setting_set","params":["k","\uD83D"], "id":2}', errors.INVALID_PARAMS, 2),
        (rb'{"jsonrpc":"2.0","method":"setting_set","params":["k",{"a":["\udc00"]}],"id":3}', errors.INVALID_PARAMS, 3),
        (rb'{"jsonrpc":"2.0","method":"test_add","params":{"\ud800":1, "b":2}, "id":4}', errors.INVALID_PARAMS, 4),
        (rb'{"jsonrpc":"2.0","method":"nope\ud800","id":5}', errors.INVALID_REQUEST, 5),
    ],
)  # fmt: skip
def test_lone_surrogates_are_answered_and_never_passed_on(
    watched: Tree, raw: Raw, payload: bytes, code: int, reply_id: Any
) -> None:
    for _ in range(8):  # more than the restart intensity, had each one hurt the gateway
        reply = raw.call(payload)
        assert reply["error"]["code"] == code
        assert reply["id"] == reply_id
    with watched.client() as client, pytest.raises(errors.NotFoundError):
        client.call("setting_get", "k")  # nothing was stored


def test_a_surrogate_in_a_batch_member_spoils_that_member_only(watched: Tree, raw: Raw) -> None:
    reply = raw.call(b'[{"jsonrpc": "2.0", "method": "test_add", "params": [1, "\\ud800"], "id": 1},'
                     b' {"jsonrpc": "2.0", "method": "test_add", "params": [1, 2], "id": 2}]')  # fmt: skip
    assert reply[0]["error"]["code"] == errors.INVALID_PARAMS
    assert reply[1] == {"jsonrpc": "2.0", "id": 2, "result": 3}


def test_a_valid_surrogate_pair_is_text(watched: Tree, raw: Raw) -> None:
    reply = raw.call(b'{"jsonrpc": "2.0", "method": "setting_set", "params": ["emoji", "\\ud83d\\ude00"], "id": 1}')
    assert reply["result"]["value"] == "\N{GRINNING FACE}"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"jsonrpc": "2.0", "method": "user_count", "id": 1, "method": "user_delete_all"}',
        b'{"jsonrpc": "2.0", "method": "user_delete", "params": {"ids": [1], "ids": []}, "id": 1}',
        b'[{"jsonrpc": "2.0", "method": "user_count", "id": 1, "id": 2}]',
    ],
)
def test_a_repeated_key_anywhere_is_an_invalid_request(watched: Tree, raw: Raw, payload: bytes) -> None:
    with watched.client() as client:
        client.call("user_add", {"username": "ann", "email": "ann@example.org", "password": "pw"})
        reply = raw.call(payload)
        assert reply["error"]["code"] == errors.INVALID_REQUEST
        assert "repeated key" in reply["error"]["message"]
        assert client.call("user_count") == 1


@pytest.mark.parametrize("method", ["slow_surrogate", "slow_exploding", "slow_unserialisable"])
def test_a_result_that_cannot_be_encoded_is_an_internal_error(watched: Tree, method: str) -> None:
    with watched.client() as client:
        for _ in range(8):
            with pytest.raises(errors.InternalError):
                client.call(method)


def test_a_failure_in_the_send_path_costs_that_reply_only(watched: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    real = gateway_module._send_reply
    failures: list[bytes] = []

    def flaky(sock: zmq.Socket[Any], envelope: tuple[bytes, ...], reply: bytes) -> None:
        if b'"poison"' in reply:
            failures.append(reply)
            msg = "the send path failed"
            raise RuntimeError(msg)
        real(sock, envelope, reply)

    monkeypatch.setattr(gateway_module, "_send_reply", flaky)
    with watched.client() as client:
        for _ in range(8):
            with pytest.raises(errors.InternalError) as caught:
                client.call("setting_set", "s", "poison")  # the reply carries the value back
            assert "could not be sent" in caught.value.message
        assert client.call("test_add", 2, 2) == 4
    assert len(failures) == 8


# -- envelopes and sizes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frames",
    [
        [b"extra", json.dumps(REQUEST).encode()],
        [b"", b"", json.dumps(REQUEST).encode()],
        [b"not-empty", b"", json.dumps(REQUEST).encode()],
        [b""] * 100_000,
    ],
)
def test_other_layouts_are_dropped_whole_and_counted(watched: Tree, raw: Raw, frames: list[bytes]) -> None:
    before = info(watched)["malformed_messages"]
    raw.socket.send_multipart(frames)
    assert raw.call(REQUEST) == OK  # the next reply on this socket is the check's: nothing was echoed
    assert info(watched)["malformed_messages"] == before + 1


def test_a_req_client_is_answered_on_its_own_layout(watched: Tree) -> None:
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(watched.endpoint)
    try:
        req.send(b'{"jsonrpc": "2.0", "method": "test_add", "params": [1], "id": "\\ud800"}')
        assert req.poll(5000)
        assert json.loads(req.recv())["error"]["code"] == errors.INVALID_REQUEST
    finally:
        req.close()


@pytest.fixture
def small_limits(tree_factory: Callable[..., Tree]) -> Iterator[Tree]:
    tree = tree_factory(
        NUA_RPC_MAX_MESSAGE_BYTES="10000", NUA_RPC_HARD_MAX_MESSAGE_BYTES="100000", NUA_RPC_MAX_REPLY_BYTES="5000"
    )
    yield tree
    assert gateway_restarts(tree) == 0


def test_a_message_between_the_limits_gets_too_large_without_echo(small_limits: Tree) -> None:
    with small_limits.client() as client:
        with pytest.raises(errors.TooLargeError) as caught:
            client.call("test_add", "x" * 20_000, 1)  # one frame: an answer, not a timeout
        assert caught.value.data == {"max_message_bytes": 10000}
        assert client.call("test_add", 1, 2) == 3
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(small_limits.endpoint)
    try:
        req.send(b"y" * 50_000)
        assert req.poll(5000)
        reply = req.recv()
        assert len(reply) < 500  # the payload is never echoed
        assert json.loads(reply)["id"] is None
        assert json.loads(reply)["error"]["code"] == errors.TOO_LARGE
    finally:
        req.close()
    assert info(small_limits)["too_large_messages"] == 2


def test_a_frame_over_the_hard_limit_drops_only_that_peer(small_limits: Tree) -> None:
    big = Raw(small_limits.endpoint)
    try:
        big.send(b"x" * 200_000)  # over MAXMSGSIZE: ZeroMQ drops this peer's connection
        with small_limits.client() as client:
            assert client.call("test_add", 1, 2) == 3
    finally:
        big.close()


def test_a_reply_over_max_reply_bytes_asks_to_page(small_limits: Tree) -> None:
    with small_limits.client() as client:
        with pytest.raises(errors.TooLargeError) as caught:
            client.call("slow_blob", 6000)
        assert caught.value.data == {"max_reply_bytes": 5000}
        assert "`limit`" in caught.value.message
        assert "`after`" in caught.value.message
        assert client.call("slow_blob", 10) == "x" * 10
        results = client.batch([Call("slow_blob", [2000]) for _ in range(3)])
        assert all(isinstance(r, errors.TooLargeError) for r in results)


def test_replies_to_a_client_that_does_not_read_are_bounded(tree_factory: Callable[..., Tree]) -> None:
    tree = tree_factory(NUA_ZMQ_SEND_HWM="2", NUA_RPC_MAX_REPLY_BYTES="8000000", NUA_RPC_MAX_IN_FLIGHT_PER_CLIENT="500")
    lazy = Raw(tree.endpoint)
    lazy.socket.setsockopt(zmq.RCVHWM, 1)
    try:
        calls = 60
        for n in range(calls):
            lazy.send({"jsonrpc": "2.0", "method": "slow_blob", "params": [1_000_000], "id": n})
        dropped = wait_info(tree, "dropped_replies", lambda value: value > 0)
        with tree.client() as other:
            assert other.call("test_add", 1, 2) == 3
        received = 0
        while lazy.socket.poll(500):
            lazy.socket.recv()
            received += 1
        # What was dropped never reached the client: at most the queues' bounds did.
        dropped = info(tree)["dropped_replies"]
        assert received + dropped == calls
        assert received < calls
    finally:
        lazy.close()
    assert gateway_restarts(tree) == 0


# -- fair shares ----------------------------------------------------------------------------------------


def _gated(raw: Raw, name: str) -> None:
    raw.send({"jsonrpc": "2.0", "method": "slow_wait", "params": [name], "id": name})


def test_one_client_at_its_bound_gets_busy_while_others_are_served(tree_factory: Callable[..., Tree]) -> None:
    tree = tree_factory(NUA_RPC_MAX_IN_FLIGHT_PER_CLIENT="2")
    greedy = Raw(tree.endpoint)
    try:
        _gated(greedy, "g1")
        _gated(greedy, "g2")
        assert rpc_test_plugin.entered("g2").wait(5)
        assert rpc_test_plugin.entered("g1").wait(5)
        reply = greedy.call({"jsonrpc": "2.0", "method": "user_count", "id": "third"})
        assert reply["error"]["code"] == errors.BUSY
        assert reply["error"]["data"] == {"max_in_flight_per_client": 2}
        # A batch's members count one each.
        batch = greedy.call([{"jsonrpc": "2.0", "method": "user_count", "id": i} for i in range(3)])
        assert {item["error"]["code"] for item in batch} == {errors.BUSY}
        with tree.client() as other:
            assert other.call("user_count") == 0
            assert other.call("test_add", 1, 2) == 3
        rpc_test_plugin.gate("g1").set()
        rpc_test_plugin.gate("g2").set()
        assert {greedy.recv()["id"], greedy.recv()["id"]} == {"g1", "g2"}
        assert greedy.call({"jsonrpc": "2.0", "method": "user_count", "id": "later"})["result"] == 0
    finally:
        greedy.close()
    assert gateway_restarts(tree) == 0


def _flood(raw: Raw, prefix: str, count: int) -> None:
    raw.send([
        {"jsonrpc": "2.0", "method": "slow_wait", "params": [f"{prefix}{n}"], "id": n} for n in range(count)
    ])  # fmt: skip


def test_a_flood_takes_its_share_only_and_system_calls_never_wait(tree_factory: Callable[..., Tree]) -> None:
    tree = tree_factory(NUA_RPC_MAX_IN_FLIGHT="6", NUA_RPC_MAX_IN_FLIGHT_PER_CLIENT="4")
    flooder, second = Raw(tree.endpoint), Raw(tree.endpoint)
    try:
        _flood(flooder, "f", 20)  # holds every worker of the pool, and its own bound
        wait_info(tree, "in_flight", lambda value: value == 4)  # the whole batch is taken in
        with tree.client() as other:
            assert other.call("sys_status")["tree"]["id"] == "root"  # its own lane: not queued behind the flood
            assert other.call("test_add", 1, 2) == 3
            assert other.call("user_count") == 0  # others keep their share
            _flood(second, "s", 20)  # now the global bound is reached too
            wait_info(tree, "in_flight", lambda value: value == 6)
            status = other.call("sys_status")  # exempt from the global bound
            assert status["tree"]["id"] == "root"
            assert "sys_status" in other.call("rpc_methods")
            assert other.call("rpc_describe", "test_add")["name"] == "test_add"
            with pytest.raises(errors.BusyError) as caught:
                other.call("user_count")  # the global bound stays for application calls
            assert caught.value.data == {"max_in_flight": 6}
        for prefix in ("f", "s"):
            for n in range(20):
                rpc_test_plugin.gate(f"{prefix}{n}").set()
        flooded = flooder.recv()
        assert sum(1 for item in flooded if "result" in item) == 4
        busy = [item["error"]["data"] for item in flooded if "error" in item]
        assert busy == [{"max_in_flight_per_client": 4}] * 16
        assert sum(1 for item in second.recv() if "result" in item) == 2
    finally:
        flooder.close()
        second.close()
    assert gateway_restarts(tree) == 0


def test_work_whose_caller_timed_out_is_cancelled_or_refused(tree_factory: Callable[..., Tree]) -> None:
    tree = tree_factory(NUA_RPC_CALL_TIMEOUT_S="0.5")
    raw = Raw(tree.endpoint)
    try:
        # Started work: the caller times out while it runs; once it goes on, it must not reach the writer.
        raw.send({"jsonrpc": "2.0", "method": "slow_set_late", "params": ["started", "late.key"], "id": "s"})
        assert rpc_test_plugin.entered("started").wait(5)
        # Work that never starts: every pool thread is held, so these wait in the pool's queue.
        holders = [f"hold{n}" for n in range(serving.POOL_THREADS - 1)]
        for name in holders:
            _gated(raw, name)
        for name in holders:
            assert rpc_test_plugin.entered(name).wait(5)
        raw.send({"jsonrpc": "2.0", "method": "slow_set_late", "params": ["queued", "queued.key"], "id": "q"})
        codes = {}
        for _ in range(2 + len(holders)):
            reply = raw.recv()
            codes[reply["id"]] = reply["error"]["code"]
        assert codes == dict.fromkeys(["s", "q", *holders], errors.TIMEOUT)
        rpc_test_plugin.gate("started").set()
        assert rpc_test_plugin.finished("started").wait(5)
        assert rpc_test_plugin.OUTCOMES["started"] == "TimeoutError"
        for name in holders:
            rpc_test_plugin.gate(name).set()
        rpc_test_plugin.gate("queued").set()
        with tree.client() as client:
            # The pool is free again; a call behind the cancelled one runs, the cancelled one never did.
            client.call("setting_set", "after", 1)
            assert not rpc_test_plugin.entered("queued").is_set()
            for key in ("late.key", "queued.key"):
                with pytest.raises(errors.NotFoundError):
                    client.call("setting_get", key)
        assert info(tree)["in_flight"] == 0
    finally:
        raw.close()


# -- bounded clients ----------------------------------------------------------------------------------


def test_connections_past_max_clients_are_refused_and_the_others_served(tree_factory: Callable[..., Tree]) -> None:
    tree = tree_factory(NUA_ZMQ_MAX_CLIENTS="2")
    first, second = tree.client(), tree.client()
    assert first.call("test_add", 1, 1) == 2
    assert second.call("test_add", 2, 2) == 4
    third = tree.client(timeout=1.0)  # connects only now that the two are in
    try:
        # Refused during its handshake (ZAP 400): its call is never delivered, its socket
        # does not retry (libzmq treats the refusal as a protocol error), and it says why.
        with pytest.raises(DaemonUnreachableError) as caught:
            third.call("test_add", 3, 3)
        assert "refused the connection: it serves too many clients" in str(caught.value)
        assert info(tree)["refused_clients"] >= 1
        wait_info(tree, "clients", lambda value: value == 2)  # the refused connection closed
        assert first.call("test_add", 1, 1) == 2
        assert second.call("test_add", 2, 2) == 4
        first.close()
        wait_info(tree, "clients", lambda value: value < 2)
        with tree.client() as fourth:
            assert fourth.call("test_add", 4, 4) == 8  # a slot freed: a new connection gets in
    finally:
        for client in (first, second, third):
            client.close()
    assert gateway_restarts(tree) == 0


def test_refused_clients_leave_no_count_behind(tree_factory: Callable[..., Tree]) -> None:
    tree = tree_factory(NUA_ZMQ_MAX_CLIENTS="1")
    with tree.client() as first:
        assert first.call("test_add", 1, 1) == 2
        others = [Client(tree.endpoint, timeout=0.3) for _ in range(5)]
        try:
            for other in others:
                with pytest.raises(DaemonUnreachableError):
                    other.call("test_add", 1, 1)
            wait_info(tree, "clients", lambda value: value == 1)  # each refused connection was closed
        finally:
            for other in others:
                other.close()
        assert first.call("test_add", 1, 1) == 2


@pytest.mark.parametrize(
    "greeting",
    [b"\x01\x00", b"\xff" + bytes(8) + b"\x7f\x01\x05"],  # ZMTP 1.0, ZMTP 2.0 (a DEALER)
    ids=["zmtp-1.0", "zmtp-2.0"],
)
def test_connections_refused_without_a_handshake_event_free_no_slot(
    tree_factory: Callable[..., Tree], greeting: bytes
) -> None:
    # libzmq refuses these old protocols (ZAP is on) with no "handshake failed" event
    # before the disconnection: counted as a client leaving, each would free a slot
    # it never held, and enough of them would let any number of clients in.
    tree = tree_factory(NUA_ZMQ_MAX_CLIENTS="2", NUA_ZMQ_ENDPOINT="tcp://127.0.0.1:0")
    endpoint = info(tree)["endpoint"]
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    first, second = Client(endpoint), Client(endpoint)
    try:
        assert first.call("test_add", 1, 1) == 2
        assert second.call("test_add", 2, 2) == 4
        for _ in range(3):
            with socket.create_connection((host, int(port)), timeout=5) as old:
                old.sendall(greeting)
                while old.recv(4096):  # until libzmq closes it
                    pass
        wait_info(tree, "clients", lambda value: value == 2)
        with Client(endpoint, timeout=1.0) as third, pytest.raises(DaemonUnreachableError):
            third.call("test_add", 3, 3)
        assert first.call("test_add", 1, 1) == 2
    finally:
        first.close()
        second.close()
    assert gateway_restarts(tree) == 0


def test_a_connection_that_never_handshakes_holds_its_slot_only_for_the_handshake_interval(
    tree_factory: Callable[..., Tree],
) -> None:
    tree = tree_factory(NUA_ZMQ_MAX_CLIENTS="1", NUA_ZMQ_ENDPOINT="tcp://127.0.0.1:0")
    endpoint = info(tree)["endpoint"]
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as idle:  # a TCP peer that never speaks ZMTP
        idle.sendall(b"\xff")  # not even a whole greeting
        wait_info(tree, "clients", lambda value: value == 1)  # open, as its descriptor is
        with Client(endpoint, timeout=1.0) as refused, pytest.raises(DaemonUnreachableError):
            refused.call("test_add", 1, 2)
        # The handshake interval ends it: libzmq closes the idle connection by itself
        # (the server's greeting first, then the end of the stream; a timeout fails the test).
        idle.settimeout(listener_module.HANDSHAKE_S * 4)
        while idle.recv(4096):
            pass
    wait_info(tree, "clients", lambda value: value == 0)
    with Client(endpoint, timeout=5) as client:
        assert client.call("test_add", 1, 2) == 3
