"""What the gateway's incarnations hand on to each other, and the socket the daemon listens on for the first.

The daemon is ready once its endpoint listens (:mod:`nua.daemon.runner`), before
its actor tree, ZeroMQ and SQLAlchemy have loaded: it makes the listening socket
itself, as systemd's socket activation makes one for a service, and the gateway's
first incarnation hands it to libzmq (``ZMQ_USE_FD``). Until then a client's
connection waits in the kernel's listen queue, costing the daemon no descriptor,
and is served once the gateway runs; nothing is admitted before the gateway's
admission handler judges it. This module imports no ZeroMQ.

Only what can be bound exactly as libzmq would bind it is made here: an ``ipc://``
path, or ``tcp://`` on an IPv4 address or ``*`` (any port, ``0`` or ``*``, is
resolved and becomes the endpoint). A host name or an interface name is for libzmq
to resolve: then the gateway binds, and the daemon is ready only once it has.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nua.endpoint import ipc_path, port_number, tcp_parts
from nua.settings import private_dir

if TYPE_CHECKING:
    from nua.rpc.key_cache import KeyCache

# Connections waiting to be accepted, as libzmq's own listen queue (ZMQ_BACKLOG's default).
BACKLOG = 100


@dataclass
class BoundEndpoint:
    """What each gateway incarnation hands on to the next: where it listens, the key store, a socket made early.

    ``tcp://…:0`` asks for any free port: a restarted gateway must come back on the
    port its clients and the runtime record know, not on a new one. The start
    function that makes each incarnation holds one and hands it to every one.
    """

    endpoint: str | None = None
    # The socket the daemon listens on since before its tree started (see the module's doc):
    # the first incarnation takes it over; its successors bind ``endpoint`` themselves.
    prebound: socket.socket | None = None
    # The key store as the last incarnation had it: a successor that cannot read the
    # database (an outage) serves with it rather than fail its start.
    keys: KeyCache | None = None


def prebind(endpoint: str) -> tuple[socket.socket, str] | None:
    """A socket listening on ``endpoint`` and the endpoint it listens on; ``None`` when libzmq must bind it.

    ``OSError`` naming the endpoint when it cannot be bound. An ``ipc://`` socket
    file is made 0600 in a directory closed to others, as the gateway makes it.
    """
    socket_file = ipc_path(endpoint)
    if socket_file is not None:
        private_dir(socket_file.parent, owner_only=True)
        return _listening(socket.AF_UNIX, str(socket_file), endpoint), endpoint
    parts = tcp_parts(endpoint)
    if parts is None:
        return None
    host, port_text = parts
    address = "0.0.0.0" if host == "*" else host  # noqa: S104 - what '*' means to libzmq
    port = 0 if port_text == "*" else port_number(port_text)
    if port is None or not _ipv4(address):
        return None
    sock = _listening(socket.AF_INET, (address, port), endpoint)
    bound_host, bound_port = sock.getsockname()
    return sock, f"tcp://{bound_host}:{bound_port}"


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _listening(family: int, address: str | tuple[str, int], endpoint: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as libzmq's listener
        sock.bind(address)
        if isinstance(address, str):
            # Before listen(): no connection can be made until the file is private.
            Path(address).chmod(0o600)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        msg = f"cannot bind the RPC endpoint {endpoint}: {exc.strerror or exc}"
        raise OSError(exc.errno, msg) from None
    return sock


__all__ = ["BACKLOG", "BoundEndpoint", "prebind"]
