"""systemd's readiness protocol (``sd_notify``): one datagram, no library.

With ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``; the daemon sends
``READY=1`` once it is ready (see :mod:`nua.daemon.runner`) and ``STOPPING=1`` when it begins to shut down. Outside
systemd the variable is unset and nothing is sent.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

NOTIFY_SOCKET = "NOTIFY_SOCKET"


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to ``$NOTIFY_SOCKET``; ``True`` if it was sent.

    A failure to send is not fatal to the daemon: it returns ``False``, as outside
    systemd, and the daemon carries on.
    """
    env = os.environ if environ is None else environ
    address = env.get(NOTIFY_SOCKET, "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # the abstract namespace
    elif not address.startswith("/"):
        return False  # systemd also allows vsock addresses; nua does not need them
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(state.encode("utf-8"), address)
        except OSError:
            return False
    return True
