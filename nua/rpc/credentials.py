"""The daemon's CURVE keys on disk: its server key pair and the client key of its own account.

Both are made at first use (:func:`nua.curve_keys.ensure`: 0600 from the start,
in a 0700 directory made so) and read back with their permissions checked: a
secret key file open to others stops the start, one line naming it. The daemon
calls :func:`prepare` before it forks (so that such a file exits 6); the gateway
reads the same files when it starts.
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

from nua import curve_keys
from nua.curve_keys import KeyPair
from nua.settings import Settings, private_dir

SERVER_KEY_FILE = "server.key_secret"
# The key the daemon registers for its own account: ``local-<account>``.
OWNER_PREFIX = "local-"


def server_key_path(settings: Settings) -> Path:
    """Where the server key pair lives: ``[zmq] keys_dir``/server.key_secret."""
    return Path(settings.zmq.keys_dir) / SERVER_KEY_FILE


def server_pair(settings: Settings) -> KeyPair:
    """The server key pair, made the first time (``SettingsError`` or ``KeyFileError`` when unusable)."""
    private_dir(settings.zmq.keys_dir)
    return curve_keys.ensure(server_key_path(settings))[0]


def rotate_server(settings: Settings, pair: KeyPair | None = None) -> KeyPair:
    """``pair`` (a new one when not given) in place of the server's key pair; the running gateway keeps the old one."""
    private_dir(settings.zmq.keys_dir)
    return curve_keys.replace(server_key_path(settings), pair)


def owner_pair(settings: Settings) -> KeyPair:
    """The client key pair of the daemon's own account (``[zmq] client_key``), made the first time."""
    path = Path(settings.zmq.client_key)
    private_dir(path.parent)
    return curve_keys.ensure(path)[0]


def owner_name() -> str:
    """The name the daemon's own account's key is registered under."""
    try:
        account = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        account = f"uid{os.geteuid()}"
    return f"{OWNER_PREFIX}{re.sub(r'[^A-Za-z0-9_.@-]', '_', account)}"[:64]


def prepare(settings: Settings) -> None:
    """Make or check both key files, as the daemon's start must (nothing to do with ``auth = "none"``)."""
    if settings.zmq.curve and settings.server.start_zmq_server:
        server_pair(settings)
        owner_pair(settings)


__all__ = [
    "OWNER_PREFIX",
    "SERVER_KEY_FILE",
    "owner_name",
    "owner_pair",
    "prepare",
    "rotate_server",
    "server_key_path",
    "server_pair",
]
