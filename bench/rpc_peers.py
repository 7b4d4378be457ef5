"""The peers and the load generator of bench/rpc.py, each run as its own process.

    python bench/rpc_peers.py echo ENDPOINT
        a bare pyzmq ROUTER that only json.loads each request and json.dumps a
        reply (the sum of the two params): the floor of any JSON-RPC server here.
    python bench/rpc_peers.py tinyrpc ENDPOINT DB_URL SYNCHRONOUS
        a plain tinyrpc RPCServer on ZmqServerTransport serving setting_set with
        a new SQLAlchemy ORM Session and a commit per call (SQLite, WAL, the same
        synchronous mode as the daemon).
    python bench/rpc_peers.py tree ENDPOINT DB_URL
        nua's real actor tree (supervisor, DB writer, gateway) in a process of its
        own, for when the daemon cannot be started.

``load`` (imported by bench/rpc.py) is the client side: a raw DEALER that sends a
call, waits for its reply and sends the next, the same for every server.
"""

import json
import os
import sys
import threading
import time
from typing import Any

import zmq


def echo(endpoint: str) -> None:
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.bind(endpoint)
    print("ready", flush=True)
    while True:
        frames = sock.recv_multipart()
        request = json.loads(frames[-1])
        a, b = request["params"]
        reply = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": a + b})
        sock.send_multipart([*frames[:-1], reply.encode()])


def tinyrpc_server(endpoint: str, db_url: str, synchronous: str) -> None:
    import sqlalchemy as sa  # noqa: PLC0415
    from sqlalchemy import event  # noqa: PLC0415
    from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: PLC0415
    from tinyrpc.dispatch import RPCDispatcher  # noqa: PLC0415
    from tinyrpc.protocols.jsonrpc import JSONRPCProtocol  # noqa: PLC0415
    from tinyrpc.server import RPCServer  # noqa: PLC0415
    from tinyrpc.transports.zmq import ZmqServerTransport  # noqa: PLC0415

    class Base(DeclarativeBase):
        pass

    class Setting(Base):
        __tablename__ = "settings"
        key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
        value: Mapped[Any] = mapped_column(sa.JSON)

    engine = sa.create_engine(db_url)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    Base.metadata.create_all(engine)
    dispatcher = RPCDispatcher()

    @dispatcher.public
    def setting_set(key: str, value: Any) -> dict[str, Any]:
        with Session(engine) as session:
            session.merge(Setting(key=key, value=value))
            session.commit()
        return {"key": key, "value": value}

    transport = ZmqServerTransport.create(zmq.Context.instance(), endpoint)
    print("ready", flush=True)
    RPCServer(transport, JSONRPCProtocol(), dispatcher).serve_forever()


def tree(endpoint: str, db_url: str) -> None:
    from nua import log, settings  # noqa: PLC0415
    from nua.actors.db_reader import DbReader  # noqa: PLC0415
    from nua.actors.db_writer import DbWriter  # noqa: PLC0415
    from nua.actors.directory import Directory  # noqa: PLC0415
    from nua.actors.messages import Ping  # noqa: PLC0415
    from nua.actors.supervised import ChildContext  # noqa: PLC0415
    from nua.actors.supervisor import ChildSpec, Supervisor  # noqa: PLC0415
    from nua.daemon.runner import GIL_SWITCH_INTERVAL_S  # noqa: PLC0415
    from nua.rpc.gateway import Gateway  # noqa: PLC0415

    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # as the daemon does at start
    log.configure("warning")
    overrides = {
        "NUA_ZMQ_ENDPOINT": endpoint,
        "NUA_DB_URL": db_url,
        "NUA_ZMQ_AUTH": "none",
        "NUA_DEBUG_TEST_METHODS": "true",
    }
    loaded = settings.load(environ={**os.environ, **overrides})
    directory = Directory()
    root = Supervisor.start(
        ChildContext("root", 1, lambda _exited: None),
        [
            ChildSpec("db_writer", start=lambda ctx: DbWriter.start(ctx, loaded), start_timeout_s=30),
            ChildSpec("db_reader", start=lambda ctx: DbReader.start(ctx, loaded)),
            ChildSpec("gateway", start=lambda ctx: Gateway.start(ctx, loaded, directory)),
        ],
        directory=directory,
    )
    directory.register("root", root)
    root.ask(Ping(), timeout=30)
    print("ready", flush=True)
    threading.Event().wait()


# -- the load -------------------------------------------------------------------------------


def load(  # noqa: PLR0917 - a multiprocessing target takes positional arguments
    endpoint: str,
    method: str,
    client: int,
    calls: int,
    duration_s: float,
    start_at: float,
    out: Any,
    curve: tuple[str, str, str] | None = None,
) -> None:
    """One client: calls in a loop (``calls`` of them, or for ``duration_s``), one at a time.

    With ``curve`` (the server's public key, the client's public and secret keys), over CURVE.
    Puts ``(client, latencies_in_seconds, elapsed_s)`` on ``out``.
    """
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = (key.encode() for key in curve)
    sock.connect(endpoint)
    latencies: list[float] = []
    time.sleep(max(0.0, start_at - time.time()))
    began = time.perf_counter()
    stop_at = began + duration_s if duration_s else float("inf")
    i = 0
    while (calls and i < calls) or (not calls and time.perf_counter() < stop_at):
        params: list[Any] = [i, 1] if method == "test_add" else [f"bench.{client}.{i}.{os.getpid()}", i]
        payload = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": i}).encode()
        t0 = time.perf_counter()
        sock.send(payload)
        reply = json.loads(sock.recv())
        latencies.append(time.perf_counter() - t0)
        if "result" not in reply:
            msg = f"{method} failed: {reply}"
            raise RuntimeError(msg)
        i += 1
    out.put((client, latencies, time.perf_counter() - began))
    sock.close()


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["echo", endpoint]:
            echo(endpoint)
        case ["tinyrpc", endpoint, db_url, synchronous]:
            tinyrpc_server(endpoint, db_url, synchronous)
        case ["tree", endpoint, db_url]:
            tree(endpoint, db_url)
        case _:
            sys.exit(__doc__)
