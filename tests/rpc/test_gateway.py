"""The gateway end to end: a real tree in this process, real ZeroMQ on an ipc endpoint under tmp_path."""

from __future__ import annotations

import contextlib
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pykka
import pytest
import rpc_test_plugin
import zmq
from rpc_helpers import Raw, Tree, gateway_info, make_settings, start_tree
from tinyrpc.client import RPCClient
from tinyrpc.exc import RPCError as TinyRPCError
from tinyrpc.protocols.jsonrpc import JSONRPCProtocol
from tinyrpc.transports.zmq import ZmqClientTransport
from zmq.utils.monitor import recv_monitor_message

from nua import settings
from nua.actors.db_writer import DbWriter
from nua.actors.directory import Directory
from nua.actors.messages import Crash, Exited, Ping
from nua.actors.supervised import ChildContext
from nua.actors.supervisor import ChildSpec, Supervisor
from nua.rpc import errors
from nua.rpc.cli import every_page
from nua.rpc.client import Client, DaemonUnreachableError
from nua.rpc.gateway import Gateway, GatewayInfo

REQUEST = {"jsonrpc": "2.0", "method": "test_add", "params": [2, 3], "id": 7}
OK = {"jsonrpc": "2.0", "id": 7, "result": 5}


def _code(reply: dict) -> int:
    return reply["error"]["code"]


# -- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff\xfe not utf-8", errors.PARSE_ERROR),
        (b"{not json", errors.PARSE_ERROR),
        (b'{"jsonrpc": "2.0", "method": "test_add", "params": [NaN, 1], "id": 1}', errors.PARSE_ERROR),
        (b"[" * 100_000, errors.PARSE_ERROR),
        (b"1" * 5000, errors.PARSE_ERROR),  # an integer too long for Python to convert
        (b'"a string"', errors.INVALID_REQUEST),
        (b"[]", errors.INVALID_REQUEST),
        (b'{"id": 1}', errors.INVALID_REQUEST),  # id but no method: tinyrpc's stock server dies on it
        (b'{"jsonrpc": "1.0", "method": "test_add", "id": 1}', errors.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "method": "test_add", "params": 3, "id": 1}', errors.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "method": "test_add", "id": {"an": "object"}}', errors.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "method": "test_add", "id": 1, "extra": 1}', errors.INVALID_REQUEST),
    ],
)
def test_malformed_messages_get_an_error_and_the_gateway_serves_on(raw: Raw, payload: bytes, code: int) -> None:
    reply = raw.call(payload)
    assert _code(reply) == code
    assert raw.call(REQUEST) == OK


def test_a_batch_with_a_non_object_member_answers_the_others(raw: Raw) -> None:
    reply = raw.call([REQUEST, 1, {"jsonrpc": "2.0", "method": "test_add", "params": [1, 1], "id": 8}])
    assert reply[0] == OK
    assert _code(reply[1]) == errors.INVALID_REQUEST
    assert reply[2] == {"jsonrpc": "2.0", "id": 8, "result": 2}


def test_id_null_is_a_request_not_a_notification(raw: Raw) -> None:
    assert raw.call({**REQUEST, "id": None}) == {"jsonrpc": "2.0", "id": None, "result": 5}


def test_a_multi_frame_message_is_answered_on_the_same_envelope(tree: Tree) -> None:
    req = zmq.Context.instance().socket(zmq.REQ)  # REQ adds an empty delimiter frame
    req.setsockopt(zmq.LINGER, 0)
    req.connect(tree.endpoint)
    try:
        req.send_json(REQUEST)
        assert req.poll(5000)
        assert req.recv_json() == OK
    finally:
        req.close()


# -- error codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "code"),
    [
        ("no_such_method", [], errors.METHOD_NOT_FOUND),
        ("test_add", [1], errors.INVALID_PARAMS),
        ("test_add", [1, 2, 3], errors.INVALID_PARAMS),
        ("test_add", {"a": 1, "c": 2}, errors.INVALID_PARAMS),
        ("test_add", ["1", 2], errors.INVALID_PARAMS),
        ("test_add", [True, 2], errors.INVALID_PARAMS),
        ("test_divide", [1, 0], errors.DIVISION_BY_ZERO),
        ("user_add", [{"username": "x"}], errors.INVALID_PARAMS),
        ("user_update", [999, "email", "a@b"], errors.NOT_FOUND),
        ("setting_get", ["missing.key"], errors.NOT_FOUND),
        ("rpc_describe", ["no_such_method"], errors.NOT_FOUND),
        ("slow_boom", [], errors.INTERNAL_ERROR),
        ("slow_unserialisable", [], errors.INTERNAL_ERROR),
        ("sys_fault", ["no_such_actor"], errors.NOT_FOUND),
    ],
)
def test_error_codes(client: Client, method: str, params: object, code: int) -> None:
    args, kwargs = ([], params) if isinstance(params, dict) else (params, {})
    with pytest.raises(errors.RpcError) as caught:
        client.call(method, *args, **kwargs)
    assert errors.error_code(caught.value) == code
    assert "Traceback" not in caught.value.message
    assert caught.value.data is None or "traceback" not in caught.value.data


def test_invalid_params_name_the_parameter(client: Client) -> None:
    with pytest.raises(errors.InvalidParamsError) as caught:
        client.call("test_add", 1, "two")
    assert caught.value.data == {"param": "b", "expected": "a number"}


def test_conflict_names_the_field(client: Client) -> None:
    client.call("user_add", {"username": "ann", "email": "ann@example.org", "password": "pw"})
    with pytest.raises(errors.ConflictError) as caught:
        client.call("user_add", {"username": "ann", "email": "other@example.org", "password": "pw"})
    assert caught.value.data["field"] == "username"


def test_tracebacks_only_when_debug_asks(tree_factory: Callable[..., Tree]) -> None:
    tree = tree_factory(NUA_DEBUG_TRACEBACKS="true")
    with tree.client() as client, pytest.raises(errors.InternalError) as caught:
        client.call("slow_boom")
    assert "a bug in a method" in caught.value.data["traceback"]


# -- the data methods, with the original names ---------------------------------------------------


def test_user_and_setting_and_group_methods(client: Client) -> None:
    added = client.call("user_add", {"username": "bob", "email": "bob@example.org", "password": "s3cret", "salt": "x"})
    assert added["username"] == "bob"
    assert "password" not in added
    assert "password_hash" not in added
    assert client.call("user_count") == 1
    assert [u["username"] for u in client.call("user_list")["items"]] == ["bob"]
    assert client.call("user_list", {"names": ["nobody"]}) == {"items": [], "next": None}
    assert client.call("user_update", added["id"], "display_name", "Bob")["display_name"] == "Bob"
    assert client.call("user_update", added["id"], "password", "new-pw")["id"] == added["id"]
    assert client.call("setting_set", "ui.theme", {"dark": True})["value"] == {"dark": True}
    assert client.call("setting_get", "ui.theme")["value"] == {"dark": True}
    assert "ui.theme" in [s["key"] for s in every_page(client, "setting_list")]
    assert client.call("group_add", "admins")["name"] == "admins"
    assert client.call("group_add_members", "admins", [added["id"]]) == 1
    assert [u["id"] for u in client.call("group_members", "admins")["items"]] == [added["id"]]
    assert client.call("user_delete", [added["id"]]) == 1
    assert client.call("user_delete_all") == 0
    assert client.call("user_count") == 0


def test_rpc_methods_and_describe(client: Client) -> None:
    names = client.call("rpc_methods")
    for name in ("test_add", "test_divide", "rpc_methods", "rpc_describe", "user_add", "user_count", "user_list",
                 "user_update", "user_delete", "user_delete_all", "setting_get", "setting_set", "setting_list",
                 "group_add", "group_list", "sys_status", "sys_fault", "subtract"):  # fmt: skip
        assert name in names
    described = client.call("rpc_describe", "test_add")
    assert described["signature"] == "test_add(a: float, b: float)"
    assert [p["name"] for p in described["params"]] == ["a", "b"]


def test_sys_status(client: Client, tree: Tree) -> None:
    status = client.call("sys_status")
    assert status["endpoint"] == tree.endpoint
    assert status["methods"] == len(client.call("rpc_methods"))
    assert {"pid", "uptime_s", "db_url", "log_file"} <= set(status)
    assert status["tree"]["id"] == "root"
    children = {child["id"]: child for child in status["tree"]["children"]}
    assert children["gateway"]["state"] == "running"
    assert children["db_writer"]["restarts"] == 0


def test_sys_fault_does_not_exist_without_the_setting(tree_factory: Callable[..., Tree]) -> None:
    tree = tree_factory(NUA_DEBUG_ALLOW_FAULT_INJECTION="false")
    with tree.client() as client:
        assert "sys_fault" not in client.call("rpc_methods")
        with pytest.raises(errors.MethodNotFoundError):
            client.call("sys_fault", "db_writer")


# -- concurrency, timeouts, the bound ----------------------------------------------------------------


def test_a_slow_call_does_not_delay_others(tree: Tree, raw: Raw) -> None:
    raw.send({"jsonrpc": "2.0", "method": "slow_wait", "params": ["slow"], "id": "slow"})
    assert rpc_test_plugin.entered("slow").wait(5)
    with tree.client() as other:  # another client, and the same one, are both served meanwhile
        assert other.call("test_add", 1, 1) == 2
        assert other.call("user_count") == 0
    assert raw.call(REQUEST) == OK
    rpc_test_plugin.gate("slow").set()
    assert raw.recv() == {"jsonrpc": "2.0", "id": "slow", "result": "slow"}


def test_a_batch_runs_its_members_concurrently(raw: Raw) -> None:
    raw.send([
        {"jsonrpc": "2.0", "method": "slow_wait", "params": ["one"], "id": 1},
        {"jsonrpc": "2.0", "method": "slow_wait", "params": ["two"], "id": 2},
    ])  # fmt: skip
    # Both members are running at once, or the second would never enter.
    assert rpc_test_plugin.entered("one").wait(5)
    assert rpc_test_plugin.entered("two").wait(5)
    rpc_test_plugin.gate("two").set()
    rpc_test_plugin.gate("one").set()
    assert [item["result"] for item in raw.recv()] == ["one", "two"]


def test_timeout_then_the_late_result_is_dropped(tree_factory: Callable[..., Tree]) -> None:
    tree = tree_factory(NUA_RPC_CALL_TIMEOUT_S="0.3")
    with tree.client() as client:
        with pytest.raises(errors.TimeoutError) as caught:
            client.call("slow_wait", "late")
        assert caught.value.data["method"] == "slow_wait"
        rpc_test_plugin.gate("late").set()
        assert client.call("test_add", 1, 2) == 3  # the late result is not taken for this reply
        info = tree.directory.lookup("gateway").ask(GatewayInfo(), timeout=5)
        assert info["in_flight"] == 0


def test_busy_past_max_in_flight(tree_factory: Callable[..., Tree]) -> None:
    tree = tree_factory(NUA_RPC_MAX_IN_FLIGHT="2", NUA_RPC_MAX_IN_FLIGHT_PER_CLIENT="2")
    raw = Raw(tree.endpoint)
    try:
        for name in ("b1", "b2"):
            raw.send({"jsonrpc": "2.0", "method": "slow_wait", "params": [name], "id": name})
            assert rpc_test_plugin.entered(name).wait(5)
        with tree.client() as client:
            with pytest.raises(errors.BusyError) as caught:
                client.call("user_count")
            assert caught.value.data == {"max_in_flight": 2}
            rpc_test_plugin.gate("b1").set()
            rpc_test_plugin.gate("b2").set()
            replies = {raw.recv()["id"], raw.recv()["id"]}
            assert replies == {"b1", "b2"}
            assert client.call("user_count") == 0
    finally:
        raw.close()


# -- restart and rebind ---------------------------------------------------------------------------


def test_a_restarted_gateway_binds_the_port_its_first_incarnation_got(tree_factory: Callable[..., Tree]) -> None:
    tree = tree_factory(NUA_ZMQ_ENDPOINT="tcp://127.0.0.1:0")
    first = gateway_info(tree)["endpoint"]
    assert first.startswith("tcp://127.0.0.1:")
    assert not first.endswith(":0")
    old = tree.directory.lookup("gateway")
    assert old is not None
    old.tell(Crash("test"))
    tree.directory.wait_for("gateway", 10, not_ref=old)
    assert gateway_info(tree)["endpoint"] == first
    with Client(first, timeout=10) as client:
        assert client.call("test_add", 1, 2) == 3


def wait_event(monitor: zmq.Socket, event: int, timeout_s: float = 10.0) -> None:
    """Read ``monitor`` until ``event`` comes; fail if it does not within ``timeout_s``."""
    while monitor.poll(int(timeout_s * 1000)):
        if recv_monitor_message(monitor)["event"] == event:
            return
    pytest.fail(f"no socket event {event} within {timeout_s} s")


def test_gateway_crash_answers_first_then_restarts_and_rebinds(tree: Tree, client: Client) -> None:
    assert client.call("test_add", 1, 1) == 2  # connected to the first gateway
    # A socket has one monitor: the client's own (handshake refusals) gives way to this one.
    address = f"inproc://test-monitor-{id(client)}"
    client._socket.monitor(address, zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    monitor = zmq.Context.instance().socket(zmq.PAIR)
    monitor.connect(address)
    try:
        old = tree.directory.lookup("gateway")
        # Sent, but the connection may close before this client reads it: under load the
        # client may not run between the two (see test_daemon_e2e's sys_fault test).
        with contextlib.suppress(DaemonUnreachableError):
            assert client.call("sys_fault", "gateway") == "crash injected into gateway"
        new = tree.directory.wait_for("gateway", 10, not_ref=old)
        assert new is not old
        # The same client socket reconnects by itself. A call sent before it noticed the
        # old connection close would be lost on the wire (the network's doing, not the
        # gateway's): wait for the socket to see the close, then its new connection.
        wait_event(monitor, zmq.EVENT_DISCONNECTED)
        wait_event(monitor, zmq.EVENT_HANDSHAKE_SUCCEEDED)
        assert client.call("test_add", 2, 2) == 4
    finally:
        client._socket.disable_monitor()
        monitor.close()
    status = client.call("sys_status")
    gateway = next(c for c in status["tree"]["children"] if c["id"] == "gateway")
    assert gateway["restarts"] == 1
    assert "sys_fault" in gateway["last_error"]


class Hold:
    """Holds a restarted DB writer in ``on_start`` until released: the window a restart opens, kept open."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


class HeldWriter(DbWriter):
    """The real DB writer, except that its restarts wait for the test in ``on_start``."""

    def __init__(self, context: ChildContext, config: settings.Settings, hold: Hold) -> None:
        super().__init__(context, config)
        self.hold = hold

    def setup(self) -> None:
        if self.context.generation > 1:
            self.hold.entered.set()
            self.hold.release.wait(60)
        super().setup()


def test_a_write_while_the_db_writer_restarts_is_unavailable_then_served(tmp_path: Path) -> None:
    hold = Hold()
    tree = start_tree(make_settings(tmp_path), writer=lambda ctx, config: HeldWriter.start(ctx, config, hold))
    try:
        with tree.client() as client:
            client.call("setting_set", "k", 1)
            old = tree.directory.lookup("db_writer")
            client.call("sys_fault", "db_writer")
            # The new writer is starting: the old one is gone and unregistered.
            assert hold.entered.wait(10)
            assert tree.directory.lookup("db_writer") is None
            with pytest.raises(errors.UnavailableError) as caught:
                client.call("setting_set", "k", 2)
            assert caught.value.data == {"actor": "db_writer"}
            assert client.call("setting_get", "k")["value"] == 1  # reads go on, to the reader
            hold.release.set()
            tree.directory.wait_for("db_writer", 10, not_ref=old)
            client.call("setting_set", "k", 3)
            assert client.call("setting_get", "k")["value"] == 3
    finally:
        hold.release.set()
        tree.root.stop(timeout=30)


def test_unavailable_while_the_owner_is_not_registered(tree: Tree, client: Client) -> None:
    writer = tree.directory.lookup("db_writer")
    tree.directory.unregister("db_writer", writer)
    try:
        with pytest.raises(errors.UnavailableError) as caught:
            client.call("setting_set", "k", 1)
        assert caught.value.data == {"actor": "db_writer"}
    finally:
        tree.directory.register("db_writer", writer)


# -- compatibility ----------------------------------------------------------------------------------


def test_stock_tinyrpc_client_works_unchanged(tree: Tree) -> None:
    context = zmq.Context()
    try:
        rpc = RPCClient(JSONRPCProtocol(), ZmqClientTransport.create(context, tree.endpoint))
        assert rpc.call("test_add", [1, 2], {}) == 3
        proxy = rpc.get_proxy()
        user = proxy.user_add({"username": "old", "email": "old@example.org", "password": "pw", "salt": "abc"})
        assert user["username"] == "old"
        assert proxy.user_count() == 1
        assert [u["username"] for u in proxy.user_list()["items"]] == ["old"]
        with pytest.raises(TinyRPCError):
            proxy.test_divide(1, 0)
        assert proxy.test_add(a=2, b=5) == 7
    finally:
        context.destroy(linger=0)


def test_many_clients_at_once(tree: Tree) -> None:
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with tree.client() as c:
                for i in range(20):
                    assert c.call("test_add", n, i) == n + i
                    c.call("setting_set", f"k.{n}.{i}", i)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == []
    with tree.client() as c:
        assert len([s for s in every_page(c, "setting_list") if s["key"].startswith("k.")]) == 160


# -- binding ------------------------------------------------------------------------------------------


def test_ipc_socket_file_is_private(tree: Tree) -> None:
    path = Path(tree.endpoint.removeprefix("ipc://"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_bind_error_is_a_start_failure(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = make_settings(tmp_path, NUA_ZMQ_ENDPOINT="", NUA_ZMQ_PORT=str(port))
        exits: list[Exited] = []
        root = Supervisor.start(
            ChildContext("root", 1, exits.append),
            [ChildSpec("gateway", start=lambda ctx: Gateway.start(ctx, config, Directory()))],
        )
        with pytest.raises(pykka.ActorDeadError):
            root.ask(Ping(), timeout=10)
        assert len(exits) == 1
        assert "child 'gateway' failed to start" in exits[0].error
        assert f"cannot bind the RPC endpoint tcp://127.0.0.1:{port}" in exits[0].error


def test_tcp_endpoint_with_a_port_chosen_at_run_time(tree_factory: Callable[..., Tree]) -> None:
    tree = tree_factory(NUA_ZMQ_ENDPOINT="tcp://127.0.0.1:0")
    bound = tree.directory.lookup("gateway").ask(GatewayInfo(), timeout=5)["endpoint"]
    assert bound.startswith("tcp://127.0.0.1:")
    assert not bound.endswith(":0")
    with Client(bound, timeout=5) as client:
        assert client.call("sys_status")["endpoint"] == bound
