"""The RPC endpoint's listening socket, with its ZeroMQ context and admission handler, bound.

Made by the gateway for each of its incarnations, and once by the daemon before
its actor tree starts (:mod:`nua.daemon.runner`): the daemon is ready to be
called once its endpoint is bound, and the gateway's first incarnation takes that
socket over (:class:`Listener` travels in :class:`~nua.rpc.gateway.BoundEndpoint`).
Until the gateway's I/O thread serves it, libzmq accepts connections and holds
each handshake on the admission handler's queue (a ZAP request nobody has read
yet), so a client that connects early is answered once the gateway serves,
within the handshake interval, never refused; its calls wait in its own socket.
Until the gateway says how to judge keys, a CURVE listener's handler knows no
key: nothing is admitted unasked.

This module imports ZeroMQ and nothing of the model, so that binding costs a
start none of SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
import zmq

from nua.curve_keys import KeyPair
from nua.endpoint import ipc_path
from nua.rpc.admission import Admission
from nua.settings import Settings, private_dir

if TYPE_CHECKING:
    from nua.rpc.key_cache import KeyCache

# How long closing waits to send the last replies.
LINGER_MS = 1000
# A connection that has not completed its handshake within this is dropped.
HANDSHAKE_S = 3.0


def _no_key_known(_raw_public_key: bytes) -> str | None:
    """The CURVE handler's judgement until the gateway brings its key cache: no key is known."""
    return None


@dataclass
class Listener:
    """A bound ROUTER socket, the context it lives in and its admission handler; closed by whoever owns it."""

    context: zmq.Context[Any]
    socket: zmq.Socket[Any]
    admission: Admission
    endpoint: str  # as bound: a tcp port 0 resolved
    server_key: KeyPair | None

    def close(self) -> None:
        """Close all of it, unserved (a listener nobody took over): the endpoint is free on return."""
        self.socket.close(linger=0)
        self.admission.close()
        self.context.term()


@dataclass
class BoundEndpoint:
    """What each gateway incarnation hands on to the next: where it listens, the key store, a socket bound early.

    ``tcp://…:0`` asks for any free port: a restarted gateway must come back on the
    port its clients and the runtime record know, not on a new one. The start
    function that makes each incarnation holds one and hands it to every one.
    """

    endpoint: str | None = None
    # The socket the daemon bound before its tree started (so that it was ready early):
    # the first incarnation takes it over; its successors bind ``endpoint`` themselves.
    listener: Listener | None = None
    # The key store as the last incarnation had it: a successor that cannot read the
    # database (an outage) serves with it rather than fail its start.
    keys: KeyCache | None = None


def listen(
    settings: Settings,
    endpoint: str,
    server_key: KeyPair | None,
    *,
    log: structlog.stdlib.BoundLogger | None = None,
) -> Listener:
    """Bind ``endpoint`` as the settings say (a CURVE server with ``server_key``, else plaintext).

    ``OSError`` naming the endpoint when it cannot be bound; nothing is left open then.
    """
    context: zmq.Context[Any] = zmq.Context()
    admission: Admission | None = None
    sock: zmq.Socket[Any] | None = None
    try:
        # Bound before the socket binds, so that no connection is admitted unasked.
        admission = Admission(
            context,
            settings.zmq.max_clients,
            handshake_s=HANDSHAKE_S,
            authenticate=_no_key_known if server_key is not None else None,
            log=log,
        )
        sock = context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, LINGER_MS)
        # The hard limit: a peer sending a bigger frame is disconnected by ZeroMQ itself.
        sock.setsockopt(zmq.MAXMSGSIZE, settings.rpc.hard_max_message_bytes)
        # Replies queued per client that does not read; a full or gone peer raises (the gateway counts it).
        sock.setsockopt(zmq.SNDHWM, settings.zmq.send_hwm)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if server_key is not None:
            sock.curve_server = True
            sock.curve_secretkey = server_key.secret.encode("ascii")
            sock.curve_publickey = server_key.public.encode("ascii")
        admission.guard(sock)
        socket_file = ipc_path(endpoint)
        if socket_file is not None:
            private_dir(socket_file.parent, owner_only=True)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            msg = f"cannot bind the RPC endpoint {endpoint}: {exc}"
            raise OSError(exc.errno or errno.EADDRINUSE, msg) from None
        if socket_file is not None:
            socket_file.chmod(0o600)
        bound = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    except BaseException:
        if sock is not None:
            sock.close(linger=0)
        if admission is not None:
            admission.close()
        with contextlib.suppress(zmq.ZMQError):
            context.term()
        raise
    return Listener(context, sock, admission, bound, server_key)


__all__ = ["HANDSHAKE_S", "LINGER_MS", "BoundEndpoint", "Listener", "listen"]
