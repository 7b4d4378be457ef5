"""The settings a client needs to find the daemon (and its own key), read with ``tomllib`` alone.

The ``nua`` CLI must start about as fast as a minimal tinyrpc script: loading the
whole settings schema (:mod:`nua.settings`: every section's dataclass and rule)
costs it some 20 ms of a 60 ms run. A client needs only where the daemon's pid
file is (its runtime record lies beside it) and which endpoint its settings
name. :func:`places` reads just those from the same sources in the same order
(the packaged defaults, ``--config``/``NUA_CONFIG``, ``NUA_*`` variables) and
checks them; whenever it meets anything it does not fully understand (an
unreadable file, a value of another type, a port out of range) it returns
``None`` and the caller uses the full loader, which says what is wrong.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from nua import paths
from nua.endpoint import HIGHEST_PORT, ipc_path, port_number, tcp_parts


class Places(NamedTuple):
    """Where a client looks for the daemon (its pid file, the endpoint its settings name), and its own key."""

    pid_file: str
    endpoint: str
    client_key: str = ""  # this account's client key file (CURVE); "" when the settings name none


def places(config_file: str | None = None, environ: Mapping[str, str] | None = None) -> Places | None:
    """The pid file and endpoint these settings give, or ``None`` when only the full loader can tell."""
    env = os.environ if environ is None else environ
    try:
        values = _table_values(tomllib.loads(paths.DEFAULTS_FILE.read_text(encoding="utf-8")))
        path = config_file if config_file is not None else env.get("NUA_CONFIG", "")
        if path:
            with Path(path).expanduser().open("rb") as file:
                values.update(_table_values(tomllib.load(file)))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, _UnknownError):
        return None
    for section, key in _WANTED:
        raw = env.get(f"NUA_{section.upper()}_{key.upper()}")
        if raw is not None:
            values[(section, key)] = raw
    return _checked(values, paths.private_dirs(env))


class _UnknownError(Exception):
    """A shape of settings the quick reader leaves to the full loader."""


_WANTED = (("server", "pid_file"), ("zmq", "address"), ("zmq", "port"), ("zmq", "endpoint"), ("zmq", "client_key"))


def _table_values(document: dict[str, Any]) -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {}
    for section, key in _WANTED:
        table = document.get(section, {})
        if not isinstance(table, dict):
            raise _UnknownError
        if key in table:
            found[(section, key)] = table[key]
    return found


def _checked(values: dict[tuple[str, str], Any], dirs: Mapping[str, str]) -> Places | None:
    pid_file, address = values.get(("server", "pid_file")), values.get(("zmq", "address"))
    port, endpoint = values.get(("zmq", "port")), values.get(("zmq", "endpoint"))
    client_key = values.get(("zmq", "client_key"))
    if not (isinstance(pid_file, str) and isinstance(address, str) and isinstance(endpoint, str)):
        return None
    if not isinstance(client_key, str):
        return None
    client_key = paths.expand(client_key, dirs)
    if not Path(client_key).is_absolute() or "{" in client_key:
        return None
    if isinstance(port, str):  # from the environment
        port = int(port) if port.isascii() and port.isdigit() else None
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= HIGHEST_PORT:
        return None
    pid_file, endpoint = paths.expand(pid_file, dirs), paths.expand(endpoint, dirs)
    endpoint = endpoint or f"tcp://{address}:{port}"
    if not Path(pid_file).is_absolute() or "{" in pid_file or not _plain_endpoint(endpoint):
        return None
    return Places(pid_file, endpoint, client_key)


def _plain_endpoint(endpoint: str) -> bool:
    """``ipc://`` with an absolute path, or ``tcp://host:port`` with a port in range: the forms clients use."""
    path = ipc_path(endpoint)
    if path is not None:
        return path.is_absolute() and "{" not in str(path)
    parts = tcp_parts(endpoint)
    if parts is None:
        return False
    host, port = parts
    plain_host = bool(host) and all(char.isascii() and (char.isalnum() or char in "-.[]:*") for char in host)
    return plain_host and port_number(port) is not None


__all__ = ["Places", "places"]
