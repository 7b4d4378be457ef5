"""JSON-RPC over HTTP (issue 14 points 1, 2): the transport's rules, each refusal's status, ZeroMQ's replies."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
import zmq
from daemon_helpers import wait_until
from http_helpers import RPC_HEADERS, HttpTree

from nua.rpc.serving import IoFailed

ADD = {"jsonrpc": "2.0", "id": 1, "method": "test_add", "params": [1, 2]}


def test_a_call_answers_200_with_its_reply(tree: HttpTree) -> None:
    reply = tree.rpc(ADD, tree.token("alice"))
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"jsonrpc": "2.0", "id": 1, "result": 3}


def test_a_notification_answers_204_and_a_batch_of_them_too(tree: HttpTree) -> None:
    token = tree.token("alice")
    single = tree.rpc({"jsonrpc": "2.0", "method": "test_add", "params": [1, 2]}, token)
    batch = tree.rpc([{"jsonrpc": "2.0", "method": "test_add", "params": [1, 2]}] * 3, token)
    assert (single.status, single.body) == (204, b"")
    assert (batch.status, batch.body) == (204, b"")


def test_a_batch_answers_one_array_and_errors_stay_inside_a_200(tree: HttpTree) -> None:
    reply = tree.rpc([ADD, {"jsonrpc": "2.0", "id": 2, "method": "no_such"}], tree.token("alice"))
    assert reply.status == 200
    by_id = {item["id"]: item for item in reply.json()}
    assert by_id[1]["result"] == 3
    assert by_id[2]["error"]["code"] == -32601


def test_a_body_that_is_not_declared_json_is_refused_415(tree: HttpTree) -> None:
    token = tree.token("alice")
    for headers in ({"Content-Type": "text/plain"}, {}, {"Content-Type": "application/json; charset=latin-1"}):
        reply = tree.request("POST", "/rpc", json.dumps(ADD), headers, token=token)
        assert reply.status == 415, headers
        assert "application/json" in reply.json()["error"]
    accepted = tree.request("POST", "/rpc", ADD, {"Content-Type": "application/json; charset=utf-8"}, token=token)
    assert accepted.status == 200


def test_a_foreign_host_is_refused_403_and_the_configured_names_pass(tree_factory: Callable[..., HttpTree]) -> None:
    tree = tree_factory(NUA_HTTP_ALLOWED_HOSTS="nua.example.org")
    token = tree.token("alice")
    port = tree.address[1]
    refused = tree.rpc(ADD, token, Host=f"rebound.attacker.example:{port}")
    assert refused.status == 403
    assert "allowed_hosts" in refused.json()["error"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "nua.example.org", f"NUA.example.org:{port}"):
        assert tree.rpc(ADD, token, Host=host).status == 200, host


def test_a_request_without_host_is_refused_400(tree: HttpTree) -> None:
    body = json.dumps(ADD).encode()
    with socket.create_connection(tree.address, timeout=10) as sock:
        head = f"POST /rpc HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body)
        status_line = sock.makefile("rb").readline()
    assert status_line.split()[1] == b"400"


def test_a_cross_origin_request_is_refused_and_no_cors_header_is_ever_sent(tree: HttpTree) -> None:
    token = tree.token("alice")
    foreign = tree.rpc(ADD, token, Origin="https://evil.example")
    sandboxed = tree.rpc(ADD, token, Origin="null")
    same = tree.rpc(ADD, token, Origin="http://{}:{}".format(*tree.address))
    preflight = tree.request("OPTIONS", "/rpc", headers={"Origin": "https://evil.example"})
    assert foreign.status == 403
    assert sandboxed.status == 403
    assert same.status == 200
    assert preflight.status in {403, 405}
    for reply in (foreign, same, preflight):
        assert not [name for name in reply.headers if name.startswith("access-control-")]


def test_no_token_a_wrong_token_and_a_malformed_header_are_refused_401(tree: HttpTree) -> None:
    good = tree.token("alice")
    missing = tree.request("POST", "/rpc", ADD, RPC_HEADERS)
    wrong = tree.rpc(ADD, good[:-4] + "AAAA")
    basic = tree.request("POST", "/rpc", ADD, {**RPC_HEADERS, "Authorization": "Basic YWxpY2U6eA=="})
    for reply in (missing, wrong, basic):
        assert reply.status == 401
        assert reply.headers["www-authenticate"].startswith("Bearer")
    assert "keys token" in missing.json()["error"] or "log in" in missing.json()["error"]


def test_an_expired_token_is_refused_401(tree_factory: Callable[..., HttpTree]) -> None:
    now = [1_000_000_000.0]
    tree = tree_factory(clock=lambda: now[0])
    token = tree.token("alice", ttl_s=60)
    expires = tree.shared.tokens.check(token, 0).expires_at  # type: ignore[union-attr]
    now[0] = expires - 1
    assert tree.rpc(ADD, token).status == 200
    now[0] = expires
    refused = tree.rpc(ADD, token)
    assert refused.status == 401
    assert "expired" in refused.json()["error"]


def test_a_body_over_max_message_bytes_is_refused_413(tree_factory: Callable[..., HttpTree]) -> None:
    tree = tree_factory(NUA_RPC_MAX_MESSAGE_BYTES="1024", NUA_RPC_HARD_MAX_MESSAGE_BYTES="1024")
    token = tree.token("alice")
    big = {"jsonrpc": "2.0", "id": 1, "method": "test_add", "params": [1, 2], "pad": "x" * 2000}
    reply = tree.rpc(big, token)
    assert reply.status == 413
    assert "max_message_bytes" in reply.json()["error"]
    assert tree.rpc(ADD, token).status == 200  # the server goes on


def test_roles_are_the_key_stores_as_over_zeromq(tree: HttpTree) -> None:
    reader = tree.token("rita", role="reader")
    denied = tree.rpc({"jsonrpc": "2.0", "id": 7, "method": "user_delete_all"}, reader).json()
    allowed = tree.rpc({"jsonrpc": "2.0", "id": 8, "method": "user_count"}, reader).json()
    assert denied["error"]["code"] == -32008
    assert denied["error"]["data"] == {
        "method": "user_delete_all",
        "role_needed": "admin",
        "key": "rita",
        "role": "reader",
    }
    assert allowed["result"] == 0


def test_a_removed_key_loses_its_token_at_once(tree: HttpTree) -> None:
    token = tree.token("alice")
    assert tree.rpc(ADD, token).status == 200
    with tree.zmq() as client:
        client.call("key_remove", "alice")
    assert tree.rpc(ADD, token).status == 401


def test_a_new_token_replaces_the_last_and_only_its_hash_is_stored(tree: HttpTree) -> None:
    first = tree.token("alice")
    second = tree.token("alice")
    assert tree.rpc(ADD, first).status == 401
    assert tree.rpc(ADD, second).status == 200
    database = tree.settings.db.url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        stored = db.execute("select token_id, token_hash from key_tokens").fetchall()
    assert len(stored) == 1
    token_id, token_hash = stored[0]
    secret = second.rsplit("_", 1)[-1] if second.count("_") == 2 else second.split("_", 2)[2]
    assert token_id in second
    assert secret not in token_hash
    assert len(token_hash) == 64


def _zmq_replies(tree: HttpTree, payloads: list[Any]) -> list[Any]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(tree.settings.zmq.bind_endpoint)
    try:
        replies = []
        for payload in payloads:
            sock.send(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
            replies.append(json.loads(sock.recv()))
        return replies
    finally:
        sock.close()


@pytest.mark.parametrize(
    "payload",
    [
        ADD,
        {"jsonrpc": "2.0", "id": "x", "method": "test_add", "params": {"a": 2, "b": 5}},
        {"jsonrpc": "2.0", "id": 3, "method": "test_add", "params": ["one"]},
        {"jsonrpc": "2.0", "id": 4, "method": "no_such_method"},
        {"jsonrpc": "2.0", "id": 5, "method": "user_get", "params": [99]},
        {"jsonrpc": "2.0", "id": 6, "method": "setting_get", "params": ["no.such.key"]},
        {"jsonrpc": "2.0", "id": 7, "method": "setting_set", "params": ["bad key", "nua"]},
        [ADD, {"jsonrpc": "2.0", "id": 2, "method": "user_count"}],
        b'{"jsonrpc": "2.0", "id": 1, "method": "test_add", "method": "user_delete_all"}',
        b"{not json",
        [],
    ],
)
def test_the_same_request_gets_the_same_reply_over_zeromq_and_http(tree: HttpTree, payload: Any) -> None:
    token = tree.token("admin-http")
    over_http = tree.rpc(payload, token)
    assert over_http.status == 200
    assert over_http.json() == _zmq_replies(tree, [payload])[0]


def test_the_server_is_restarted_on_its_port_and_tokens_survive(tree: HttpTree) -> None:
    token = tree.token("alice")
    port = tree.address[1]
    ref = tree.directory.lookup("http")
    assert ref is not None
    ref.tell(IoFailed("injected by the test"))

    def replaced() -> bool:
        current = tree.directory.lookup("http")
        return current is not None and current != ref

    wait_until(replaced)
    assert tree.address[1] == port
    assert tree.rpc(ADD, token).json()["result"] == 3


def test_connections_past_max_clients_get_503(tree_factory: Callable[..., HttpTree]) -> None:
    tree = tree_factory(NUA_HTTP_MAX_CLIENTS="1")
    token = tree.token("alice")
    with socket.create_connection(tree.address, timeout=10) as held:
        held.sendall(b"")  # connected, idle: it holds the one slot

        def refused() -> bool:
            return tree.info["connections"] == 1

        wait_until(refused)
        assert tree.rpc(ADD, token).status == 503
    wait_until(lambda: tree.info["connections"] == 0)
    assert tree.rpc(ADD, token).status == 200


def test_unknown_paths_and_methods(tree: HttpTree) -> None:
    assert tree.request("GET", "/nothing").status == 404
    wrong = tree.request("GET", "/rpc")
    assert wrong.status == 405
    assert wrong.headers["allow"] == "POST"


def test_pipelined_requests_on_one_connection_are_answered_in_order(tree: HttpTree) -> None:
    token = tree.token("alice")
    requests = b""
    for n in range(3):
        body = json.dumps({"jsonrpc": "2.0", "id": n, "method": "test_add", "params": [n, 10]}).encode()
        requests += (
            f"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
    with socket.create_connection(tree.address, timeout=10) as sock:
        sock.sendall(requests)
        reader = sock.makefile("rb")
        results = []
        for _ in range(3):
            assert reader.readline().split()[1] == b"200"
            length = 0
            while (line := reader.readline().strip()) != b"":
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            results.append(json.loads(reader.read(length))["result"])
    assert results == [10, 11, 12]


def test_pipelined_requests_answered_at_once_are_all_answered(tree: HttpTree) -> None:
    head = b"GET /console.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(tree.address, timeout=10) as sock:
        sock.sendall(head * 3 + b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reader = sock.makefile("rb")
        statuses = []
        for _ in range(4):
            statuses.append(int(reader.readline().split()[1]))
            length = 0
            while (line := reader.readline().strip()) != b"":
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            reader.read(length)
    assert statuses == [200, 200, 200, 404]


def test_a_head_over_16_kib_is_refused_431(tree: HttpTree) -> None:
    with socket.create_connection(tree.address, timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 20_000 + b"\r\n\r\n")
        assert sock.makefile("rb").readline().split()[1] == b"431"
