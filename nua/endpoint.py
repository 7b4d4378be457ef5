"""Facts about the RPC endpoint the daemon needs without a ZeroMQ socket of its own."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

IPC_PREFIX = "ipc://"
TCP_PREFIX = "tcp://"


def ipc_path(endpoint: str) -> Path | None:
    """The socket file behind an ``ipc://`` endpoint, ``None`` for any other transport."""
    if not endpoint.startswith(IPC_PREFIX):
        return None
    return Path(endpoint[len(IPC_PREFIX) :])


def is_free(endpoint: str) -> bool:
    """Whether a new daemon could bind ``endpoint`` now.

    A TCP endpoint is free when nothing listens on it (checked by binding it, as
    ZeroMQ does, with ``SO_REUSEADDR``); an ``ipc://`` endpoint is free when no
    process accepts connections on its socket file.
    """
    path = ipc_path(endpoint)
    if path is not None:
        return not _unix_listening(path)
    if endpoint.startswith(TCP_PREFIX):
        host, _, port = endpoint[len(TCP_PREFIX) :].rpartition(":")
        if port.isdigit() and host:
            return _tcp_bindable(host.strip("[]"), int(port))
    return True  # an endpoint nua cannot probe is assumed free


def _unix_listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _tcp_bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):
            probe.bind((host, port))
            return True
    return False
