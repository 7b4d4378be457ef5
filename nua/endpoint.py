"""Facts about the RPC endpoint the daemon needs without a ZeroMQ socket of its own."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

IPC_PREFIX = "ipc://"
TCP_PREFIX = "tcp://"
HIGHEST_PORT = 65535


def ipc_path(endpoint: str) -> Path | None:
    """The socket file behind an ``ipc://`` endpoint, ``None`` for any other transport."""
    if not endpoint.startswith(IPC_PREFIX):
        return None
    return Path(endpoint[len(IPC_PREFIX) :])


def tcp_parts(endpoint: str) -> tuple[str, str] | None:
    """The host and port text of a ``tcp://host:port`` endpoint (either may be empty); ``None`` for another one."""
    if not endpoint.startswith(TCP_PREFIX):
        return None
    host, _, port = endpoint[len(TCP_PREFIX) :].rpartition(":")
    return host, port


def port_number(text: str) -> int | None:
    """``text`` as a TCP port (ASCII digits, 0 to 65535), else ``None``."""
    if not (text.isascii() and text.isdigit()):
        return None
    port = int(text)
    return port if port <= HIGHEST_PORT else None


def is_free(endpoint: str) -> bool:
    """Whether a new daemon could bind ``endpoint`` now.

    A TCP endpoint is free when nothing listens on it (checked by binding it, as
    ZeroMQ does, with ``SO_REUSEADDR``); an ``ipc://`` endpoint is free when no
    process accepts connections on its socket file.
    """
    path = ipc_path(endpoint)
    if path is not None:
        return not _unix_listening(path)
    parts = tcp_parts(endpoint)
    if parts is not None:
        host, port = parts[0], port_number(parts[1])
        if port is not None and host:
            return _tcp_bindable(host.strip("[]"), port)
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
