"""Roles checked before the call (default deny), and the ZAP handler that names each connection's key."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from rpc_helpers import make_settings
from zmq.utils import z85

from nua import curve_keys
from nua.actors.directory import Directory
from nua.roles import Role
from nua.rpc.access import UNAUTHENTICATED, Caller
from nua.rpc.admission import ZAP_ENDPOINT, Admission
from nua.rpc.dispatch import Dispatcher
from nua.rpc.errors import FORBIDDEN
from nua.rpc.key_cache import KeyCache
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import Services

RAN: list[str] = []


class Guarded(MethodGroup):
    prefix = "guarded_"

    @public(role="reader")
    def read(self) -> str:
        RAN.append("read")
        return "read"

    @public(role="admin", changes=True)
    def wipe(self) -> str:
        RAN.append("wipe")
        return "wiped"

    @public
    def forgotten(self) -> str:
        RAN.append("forgotten")
        return "ran"


@pytest.fixture
def dispatch(tmp_path: Path) -> Iterator[Any]:
    RAN.clear()
    services = Services(make_settings(tmp_path), Directory())
    services.registry.add_group(Guarded(services))
    pool = concurrent.futures.ThreadPoolExecutor(1)
    dispatcher = Dispatcher(services.registry, executor=pool, wakeup=lambda: None, max_in_flight=8, call_timeout_s=5)

    def call(payload: Any, caller: Caller) -> Any:
        sent: list[Any] = []
        dispatcher.handle(json.dumps(payload).encode(), lambda reply: sent.append(json.loads(reply)), b"c", caller)
        (reply,) = sent
        return reply

    yield call
    pool.shutdown(wait=True)


def _request(method: str, request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "id": request_id}


def test_a_reader_is_refused_an_admin_method_before_it_runs(dispatch: Any) -> None:
    reply = dispatch(_request("guarded_wipe"), Caller("r1", Role.READER))
    assert reply["error"]["code"] == FORBIDDEN
    assert reply["error"]["data"] == {"method": "guarded_wipe", "role_needed": "admin", "key": "r1", "role": "reader"}
    assert "needs the admin role" in reply["error"]["message"]
    assert RAN == []
    assert dispatch(_request("guarded_read"), Caller("r1", Role.READER))["result"] == "read"
    assert dispatch(_request("guarded_wipe"), Caller("a1", Role.ADMIN))["result"] == "wiped"


def test_a_method_declaring_no_role_is_denied_to_everyone(dispatch: Any) -> None:
    for caller in (UNAUTHENTICATED, Caller("a1", Role.ADMIN)):
        reply = dispatch(_request("guarded_forgotten"), caller)
        assert reply["error"]["code"] == FORBIDDEN
        assert reply["error"]["data"]["role_needed"] is None
    assert RAN == []


def test_each_batch_member_is_checked_on_its_own(dispatch: Any) -> None:
    replies = dispatch([_request("guarded_read", 1), _request("guarded_wipe", 2)], Caller("o1", Role.OPERATOR))
    by_id = {reply["id"]: reply for reply in replies}
    assert by_id[1]["result"] == "read"
    assert by_id[2]["error"]["code"] == FORBIDDEN
    assert RAN == ["read"]


def test_every_builtin_method_declares_a_role(tmp_path: Path) -> None:
    from nua.rpc import plugins  # noqa: PLC0415

    services = Services(make_settings(tmp_path, NUA_RPC_PLUGINS=""), Directory())
    registry = plugins.build(services, use_entry_points=False)
    undeclared = [name for name in registry.names() if registry.get(name).role is None]  # type: ignore[union-attr]
    assert undeclared == []
    changing = {name for name in registry.names() if registry.get(name).changes}  # type: ignore[union-attr]
    assert {"user_delete_all", "setting_set", "key_add", "key_remove"} <= changing
    assert "user_list" not in changing


# -- the ZAP handler ------------------------------------------------------------------------------


class Zap:
    """An Admission on its own context, asked through a REQ socket as libzmq asks it."""

    def __init__(self, authenticate: Any) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        self.admission = Admission(self.context, 10, handshake_s=1.0, authenticate=authenticate)
        self.req = self.context.socket(zmq.REQ)
        self.req.connect(ZAP_ENDPOINT)

    def ask(self, mechanism: bytes, credentials: bytes) -> list[bytes]:
        self.req.send_multipart([b"1.0", b"7", b"nua", b"127.0.0.1", b"", mechanism, credentials])
        (zap,) = self.admission.sockets()
        assert zap.poll(5000)
        self.admission.handle(zap)
        assert self.req.poll(5000)
        return self.req.recv_multipart()

    def close(self) -> None:
        self.req.close(linger=0)
        self.admission.close()
        self.context.term()


@pytest.fixture
def known() -> tuple[KeyCache, curve_keys.KeyPair]:
    pair = curve_keys.generate()
    cache = KeyCache()
    cache.load([{"name": "alice", "public_key": pair.public, "role": "operator"}])
    return cache, pair


def test_the_handler_names_a_known_key_and_refuses_others(known: tuple[KeyCache, curve_keys.KeyPair]) -> None:
    cache, pair = known
    zap = Zap(cache.name_of)
    try:
        raw = z85.decode(pair.public)
        # The User-Id is the key itself: a message's caller is looked up by the key it proved.
        assert zap.ask(b"CURVE", raw)[2:5] == [b"200", b"OK", pair.public.encode("ascii")]
        assert cache.caller(pair.public) == Caller("alice", Role.OPERATOR)
        stranger = z85.decode(curve_keys.generate().public)
        assert zap.ask(b"CURVE", stranger)[2] == b"400"
        assert zap.ask(b"NULL", b"")[2] == b"400"  # no CURVE, no admission
        assert zap.admission.unknown_keys == 1
        # The name given to another key: the old key's open connections lose it at once.
        other = curve_keys.generate()
        cache.put({"name": "alice", "public_key": other.public, "role": "admin"})
        assert cache.caller(pair.public) is None
        assert cache.caller(other.public) == Caller("alice", Role.ADMIN)
        cache.drop("alice")
        assert zap.ask(b"CURVE", raw)[2] == b"400"
        assert cache.caller(other.public) is None
    finally:
        zap.close()


def test_a_handler_that_cannot_judge_refuses() -> None:
    def broken(_raw: bytes) -> str | None:
        raise RuntimeError("the key store is gone")

    zap = Zap(broken)
    try:
        assert zap.ask(b"CURVE", b"k" * 32)[2:4] == [b"500", b"internal error"]
    finally:
        zap.close()


# -- a gateway restarted during an outage -----------------------------------------------------------


def test_a_gateway_restarted_without_the_database_keeps_the_keys_it_had(tree_factory: Any, tmp_path: Path) -> None:
    from rpc_helpers import gateway_info  # noqa: PLC0415

    from nua.actors.messages import Crash  # noqa: PLC0415
    from nua.rpc.client import Client  # noqa: PLC0415

    tree = tree_factory(NUA_ZMQ_AUTH="curve")
    server_key = gateway_info(tree)["server_key"]
    owner = curve_keys.read(tmp_path / "client" / "client.key_secret")
    with Client(tree.endpoint, 5.0, server_key=server_key, client_key=owner) as client:
        assert client.call("test_add", 1, 1) == 2
        reader = tree.directory.lookup("db_reader")
        assert reader is not None
        tree.directory.unregister("db_reader", reader)  # reads now fail: "db_reader is not running"
        old = tree.directory.lookup("gateway")
        assert old is not None
        old.tell(Crash("the test"))  # as sys_fault does, without waiting for its reply
        tree.directory.wait_for("gateway", 10, not_ref=old)
        assert client.call("test_add", 2, 2) == 4  # the restarted gateway still knows the owner's key
        tree.directory.register("db_reader", reader)


def test_rows_read_across_a_change_are_refused_so_a_removed_key_stays_removed(
    known: tuple[KeyCache, curve_keys.KeyPair],
) -> None:
    cache, pair = known
    read_at = cache.version
    rows = [{"name": "alice", "public_key": pair.public, "role": "operator"}]  # read before the removal committed
    cache.drop("alice")  # the removal's callback, from a call the previous gateway had started
    assert cache.load(rows, read_at=read_at) is False
    assert cache.caller(pair.public) is None
    assert cache.load([], read_at=cache.version) is True  # read again, after the change
