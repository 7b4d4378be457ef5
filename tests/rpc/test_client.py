"""The client library against a real gateway: typed errors, batches, timeouts, an absent daemon."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
import rpc_test_plugin
from rpc_helpers import Tree

from nua.rpc import errors
from nua.rpc.client import Call, Client, DaemonUnreachableError


def test_call_positional_and_named(client: Client) -> None:
    assert client.call("test_add", 1, 2) == 3
    assert client.call("test_add", a=1.5, b=2) == 3.5
    with pytest.raises(TypeError):
        client.call("test_add", 1, b=2)


def test_errors_are_typed_with_code_message_data(client: Client) -> None:
    with pytest.raises(errors.DivisionByZeroError) as caught:
        client.call("test_divide", 1, 0)
    assert caught.value.code == errors.DIVISION_BY_ZERO
    assert caught.value.message == "division by zero"
    assert caught.value.data["param"] == "b"


def test_batch_results_in_order_with_errors_returned(client: Client) -> None:
    results = client.batch([
        Call("test_add", [1, 2]),
        Call("test_divide", [1, 0]),
        Call("setting_set", ["batch.key", 1], notify=True),
        Call("test_add", {"a": 5, "b": 5}),
    ])  # fmt: skip
    assert results[0] == 3
    assert isinstance(results[1], errors.DivisionByZeroError)
    assert results[2] == 10
    # A notification is not acknowledged; a write acknowledged after it was queued behind it in
    # the DB writer, so once that one is answered the notification is applied and reads see it.
    client.call("setting_set", "batch.barrier", 1)
    assert client.call("setting_get", "batch.key")["value"] == 1  # the notification ran
    assert client.batch([Call("setting_set", ["batch.other", 2], notify=True)]) == []


def test_notification_sends_and_returns(client: Client) -> None:
    client.notify("setting_set", "notified.key", "on")
    client.call("setting_set", "notified.barrier", 1)  # acknowledged after the notification: see above
    assert client.call("setting_get", "notified.key")["value"] == "on"


def test_a_late_reply_is_not_taken_for_the_next_call(tree: Tree) -> None:
    with tree.client(timeout=0.3) as client:
        with pytest.raises(DaemonUnreachableError) as caught:
            client.call("slow_wait", "late-client")
        assert caught.value.connected
        rpc_test_plugin.gate("late-client").set()
        client.timeout = 5
        # No REQ lock-up, and the stale reply to the first call is dropped.
        assert client.call("test_add", 40, 2) == 42


def test_unreachable_daemon_says_how_to_start_it(tmp_path: Path) -> None:
    with (
        Client(f"ipc://{tmp_path}/nobody.sock", timeout=0.3) as client,
        pytest.raises(DaemonUnreachableError) as caught,
    ):
        client.call("test_add", 1, 2)
    assert "nua-orchestrator start" in str(caught.value)
    assert not caught.value.connected


@pytest.mark.parametrize("where", ["ipc", "tcp"])
def test_a_daemon_that_is_not_there_is_reported_at_once(tmp_path: Path, where: str) -> None:
    if where == "tcp":
        with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
            probe.bind(("127.0.0.1", 0))
            endpoint = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    else:
        endpoint = f"ipc://{tmp_path}/absent.sock"
    with Client(endpoint, timeout=3600) as client, pytest.raises(DaemonUnreachableError) as caught:
        client.call("test_add", 1, 2)
    # Said only by the check made at once, not by the end of the (here hour-long) timeout.
    assert "nothing listens there" in str(caught.value)


def test_a_call_refused_unread_by_a_restarting_gateway_is_sent_again(tmp_path: Path) -> None:
    """A fake server refuses the first try with dispatched=false and answers the second."""
    import json  # noqa: PLC0415

    import zmq  # noqa: PLC0415

    endpoint = f"ipc://{tmp_path}/fake.sock"
    server = zmq.Context.instance().socket(zmq.ROUTER)
    server.setsockopt(zmq.LINGER, 0)
    server.bind(endpoint)
    seen: list[dict] = []

    def serve() -> None:
        for attempt in range(2):
            assert server.poll(5000)
            envelope, payload = server.recv_multipart()
            request = json.loads(payload)
            seen.append(request)
            if attempt == 0:
                error = {"code": errors.UNAVAILABLE, "message": "restarting", "data": {"dispatched": False}}
                reply = {"jsonrpc": "2.0", "id": request["id"], "error": error}
            else:
                reply = {"jsonrpc": "2.0", "id": request["id"], "result": "second try"}
            server.send_multipart([envelope, json.dumps(reply).encode()])

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with Client(endpoint, timeout=5) as client:
            assert client.call("anything") == "second try"
    finally:
        thread.join(10)
        server.close()
    assert [r["id"] for r in seen] == [seen[0]["id"]] * 2
