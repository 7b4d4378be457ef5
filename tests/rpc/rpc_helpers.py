"""Helpers of the RPC tests: settings in a temporary directory, a real tree, a raw socket.

A module of their own, not the conftest: another test directory has a ``conftest``
too, and ``from conftest import`` would depend on collection order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pykka
import zmq

from nua import settings
from nua.actors.db_reader import DbReader
from nua.actors.db_writer import DbWriter
from nua.actors.directory import Directory
from nua.actors.messages import ChildInfo, Ping, WhichChildren
from nua.actors.supervised import ChildContext
from nua.actors.supervisor import ChildSpec, Intensity, Supervisor
from nua.rpc.bound import BoundEndpoint
from nua.rpc.client import Client
from nua.rpc.gateway import Gateway, GatewayInfo

HERE = Path(__file__).resolve().parent


def make_settings(tmp_path: Path, **env: str) -> settings.Settings:
    """Settings private to ``tmp_path``: an ipc endpoint, SQLite, cheap scrypt, the test plugin."""
    base = {
        "NUA_DB_URL": f"sqlite:///{tmp_path}/nua.db",
        "NUA_ZMQ_ENDPOINT": f"ipc://{tmp_path}/run/nua.sock",
        "NUA_SERVER_PID_FILE": f"{tmp_path}/run/nua.pid",
        "NUA_SERVER_EXIT_FLAG": f"{tmp_path}/run/nua.exit",
        "NUA_SERVER_LOG_FILE": f"{tmp_path}/nua.log",
        "NUA_SECURITY_SCRYPT_N": "1024",
        "NUA_DEBUG_ALLOW_FAULT_INJECTION": "true",
        "NUA_DEBUG_TEST_METHODS": "true",
        "NUA_RPC_PLUGINS": "rpc_test_plugin",
        # Stock clients and raw sockets: no CURVE here (tests/rpc/test_auth.py has it); keys stay in tmp_path.
        "NUA_ZMQ_AUTH": "none",
        "NUA_ZMQ_KEYS_DIR": f"{tmp_path}/keys",
        "NUA_ZMQ_CLIENT_KEY": f"{tmp_path}/client/client.key_secret",
    }
    return settings.load(environ={**base, **env})


@dataclass
class Tree:
    settings: settings.Settings
    directory: Directory
    root: Any

    @property
    def endpoint(self) -> str:
        return self.settings.zmq.bind_endpoint

    def client(self, timeout: float = 5.0) -> Client:
        return Client(self.endpoint, timeout=timeout)


def gateway_restarts(tree: Tree) -> int:
    """How often the root supervisor has restarted the gateway."""
    children = cast("tuple[ChildInfo, ...]", tree.root.ask(WhichChildren(), timeout=10))
    return next(child.restarts for child in children if child.id == "gateway")


def gateway_info(tree: Tree) -> dict[str, Any]:
    """The gateway's ``GatewayInfo``: endpoint, calls in flight, clients, drop counters."""
    ref = tree.directory.lookup("gateway")
    assert ref is not None
    return cast("dict[str, Any]", ref.ask(GatewayInfo(), timeout=10))


def start_tree(
    config: settings.Settings,
    writer: Callable[[ChildContext, settings.Settings], pykka.ActorRef[Any]] = DbWriter.start,
) -> Tree:
    """The daemon's children under a root supervisor; ``writer`` starts the DB writer (a test double may)."""
    directory = Directory()
    bound = BoundEndpoint()
    root = Supervisor.start(
        ChildContext("root", 1, lambda _exited: None),
        [
            ChildSpec("db_writer", start=lambda ctx: writer(ctx, config), start_timeout_s=30),
            ChildSpec("db_reader", start=lambda ctx: DbReader.start(ctx, config)),
            ChildSpec("gateway", start=lambda ctx: Gateway.start(ctx, config, directory, bound=bound)),
        ],
        directory=directory,
        intensity=Intensity(max_restarts=20, max_seconds=5),
    )
    directory.register("root", root)
    root.ask(Ping(), timeout=30)
    return Tree(config, directory, root)


class Raw:
    """A DEALER socket sending raw bytes, for malformed input."""

    def __init__(self, endpoint: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def send(self, payload: bytes | str | Any) -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        elif not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
        self.socket.send(payload)

    def recv(self, timeout: float = 5.0) -> Any:
        assert self.socket.poll(int(timeout * 1000)), "no reply"
        return json.loads(self.socket.recv())

    def call(self, payload: bytes | str | Any, timeout: float = 5.0) -> Any:
        self.send(payload)
        return self.recv(timeout)

    def close(self) -> None:
        self.socket.close()
