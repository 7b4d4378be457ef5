"""The RPC endpoint's ROUTER socket, with its ZeroMQ context and admission handler, bound.

Made by the gateway for each of its incarnations. The first one may be handed the
listening socket the daemon made before its tree started (:mod:`nua.rpc.bound`):
libzmq then serves that socket (``ZMQ_USE_FD``, as for systemd's socket
activation), and the connections waiting in its queue are accepted now.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
import zmq

from nua.curve_keys import KeyPair
from nua.endpoint import ipc_path
from nua.rpc.admission import Admission
from nua.settings import Settings, private_dir

# How long closing waits to send the last replies.
LINGER_MS = 1000
# A connection that has not completed its handshake within this is dropped.
HANDSHAKE_S = 3.0


@dataclass
class Listener:
    """A bound ROUTER socket, the context it lives in and its admission handler: the gateway closes them."""

    context: zmq.Context[Any]
    socket: zmq.Socket[Any]
    admission: Admission
    endpoint: str  # as bound: a tcp port 0 resolved


def listen(
    settings: Settings,
    endpoint: str,
    server_key: KeyPair | None,
    *,
    authenticate: Callable[[bytes], str | None] | None,
    log: structlog.stdlib.BoundLogger | None = None,
    prebound: socket.socket | None = None,
) -> Listener:
    """Bind ``endpoint`` as the settings say (a CURVE server with ``server_key``, else plaintext).

    ``authenticate`` judges CURVE keys (see :class:`~nua.rpc.admission.Admission`).
    ``prebound``: a socket already listening on ``endpoint``, which libzmq takes over.
    ``OSError`` naming the endpoint when it cannot be bound; nothing is left open then.
    """
    context: zmq.Context[Any] = zmq.Context()
    admission: Admission | None = None
    sock: zmq.Socket[Any] | None = None
    try:
        # Bound before the socket binds, so that no connection is admitted unasked.
        admission = Admission(
            context, settings.zmq.max_clients, handshake_s=HANDSHAKE_S, authenticate=authenticate, log=log
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
        if socket_file is not None and prebound is None:
            private_dir(socket_file.parent, owner_only=True)
        if prebound is not None:
            sock.setsockopt(zmq.USE_FD, prebound.detach())  # libzmq owns it from now on
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            msg = f"cannot bind the RPC endpoint {endpoint}: {exc}"
            raise OSError(exc.errno or errno.EADDRINUSE, msg) from None
        if socket_file is not None and prebound is None:
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
    return Listener(context, sock, admission, bound)


__all__ = ["HANDSHAKE_S", "LINGER_MS", "Listener", "listen"]
