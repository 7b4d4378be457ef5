"""Helpers of the HTTP tests: a real tree (DB actors, gateway, HTTP server) and a plain HTTP client.

The tree is the daemon's, in this process: the tests publish into its event hub
directly and read its caches. Requests go through :mod:`http.client`, so every
header (Host, Origin, Content-Type) is the test's to choose.
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pykka
import rpc_helpers

from nua import bearer_tokens, curve_keys, settings
from nua.actors.db_reader import DbReader
from nua.actors.db_writer import DbWriter
from nua.actors.directory import Directory
from nua.actors.events import EventHub
from nua.actors.health import Health
from nua.actors.messages import Ping
from nua.actors.supervised import ChildContext
from nua.actors.supervisor import ChildSpec, Intensity, Supervisor
from nua.http.server import HttpInfo, HttpServer, HttpShared
from nua.rpc.client import Client
from nua.rpc.gateway import BoundEndpoint, Gateway
from nua.rpc.token_cache import TokenCache

RPC_HEADERS = {"Content-Type": "application/json"}


def make_settings(tmp_path: Path, **env: str) -> settings.Settings:
    """The RPC tests' settings (ipc, no ZeroMQ auth: the test is admin; the test plugin), with HTTP on a free port."""
    return rpc_helpers.make_settings(tmp_path, **{"NUA_HTTP_PORT": "0", **env})


@dataclass
class HttpTree:
    settings: settings.Settings
    directory: Directory
    root: Any
    events: EventHub
    shared: HttpShared
    names: set[str] = field(default_factory=set)

    @property
    def info(self) -> dict[str, Any]:
        ref = self.directory.lookup("http")
        assert ref is not None
        info: dict[str, Any] = ref.ask(HttpInfo(), timeout=10)
        return info

    @property
    def address(self) -> tuple[str, int]:
        assert self.shared.port is not None
        return "127.0.0.1", self.shared.port

    def zmq(self) -> Client:
        return Client(self.settings.zmq.bind_endpoint, timeout=10)

    def token(self, name: str, role: str = "admin", ttl_s: float = 3600.0) -> str:
        """A new key ``name`` with ``role`` and its bearer token, made over ZeroMQ as an admin would."""
        made = bearer_tokens.make()
        with self.zmq() as client:
            if name not in self.names:
                client.call("key_add", name, curve_keys.generate().public, role)
                self.names.add(name)
            client.call("key_token", name, made.token_id, made.token_hash, ttl_s)
        return made.text

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | Any = None,
        headers: dict[str, str] | None = None,
        *,
        token: str | None = None,
    ) -> Reply:
        """One request on a new connection; ``Host`` is this server's unless ``headers`` name another."""
        if body is not None and not isinstance(body, bytes | str):
            body = json.dumps(body)
        sent = {"Host": "{}:{}".format(*self.address), **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection(*self.address, timeout=10)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def rpc(self, payload: Any, token: str, **headers: str) -> Reply:
        return self.request("POST", "/rpc", payload, {**RPC_HEADERS, **headers}, token=token)

    def stop(self) -> None:
        self.root.stop(timeout=30)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def start_tree(config: settings.Settings, clock: Any = None) -> HttpTree:
    """DB writer, DB reader, gateway and HTTP server under a root supervisor, as the daemon's tree has them."""
    directory = Directory()
    health = Health()
    events = EventHub()
    tokens = TokenCache()
    bound = BoundEndpoint()
    shared = HttpShared(tokens=tokens, gateway=bound)
    extra = {} if clock is None else {"clock": clock}

    def gateway(ctx: ChildContext) -> pykka.ActorRef[Any]:
        return Gateway.start(ctx, config, directory, health, bound, events=events, tokens=tokens)

    def server(ctx: ChildContext) -> pykka.ActorRef[Any]:
        return HttpServer.start(ctx, config, directory, health, shared, events=events, **extra)

    root = Supervisor.start(
        ChildContext("root", 1, lambda _exited: None),
        [
            ChildSpec("db_writer", start=lambda ctx: DbWriter.start(ctx, config, health), start_timeout_s=30),
            ChildSpec("db_reader", start=lambda ctx: DbReader.start(ctx, config, health)),
            ChildSpec("gateway", start=gateway),
            ChildSpec("http", start=server),
        ],
        directory=directory,
        intensity=Intensity(max_restarts=20, max_seconds=5),
    )
    directory.register("root", root)
    root.ask(Ping(), timeout=30)
    return HttpTree(config, directory, root, events, shared)


class EventReader:
    """A ``GET /events`` stream read line by line, as a browser's EventSource would."""

    def __init__(self, tree: HttpTree, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection(tree.address, timeout=10)
        lines = ["GET /events HTTP/1.1", "Host: {}:{}".format(*tree.address)]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.file = self.sock.makefile("rb")
        self.status = int(self.file.readline().split()[1])
        self.headers: dict[str, str] = {}
        while (line := self.file.readline().strip()) != b"":
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.lower()] = value.strip()

    def message(self) -> dict[str, str]:
        """The next SSE message with data (fields: id, event, data); comments and retry skipped.

        The body is chunked: a chunk-size line precedes each piece, and is skipped too.
        """
        fields: dict[str, str] = {}
        while True:
            raw = self.file.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode("utf-8").rstrip("\r\n")
            if line == "":
                if "data" in fields:
                    return fields
                fields = {}
                continue
            name, colon, value = line.partition(":")
            if not colon or name in {"", "retry"} or name not in {"id", "event", "data"}:
                continue
            fields[name] = value.removeprefix(" ")

    def close(self) -> None:
        self.file.close()
        self.sock.close()
