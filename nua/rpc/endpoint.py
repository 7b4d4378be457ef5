"""Where the daemon listens, found as the daemon finds it, but cheaply, for the CLI.

The daemon's endpoint comes from ``[zmq] endpoint``, ``address`` and ``port`` in
the packaged defaults, the config file (``--config`` or ``NUA_CONFIG``) and the
``NUA_ZMQ_*`` variables. Loading the full settings (:func:`nua.settings.load`)
costs ``tomllib``, ``dataclasses`` and the whole schema: measured with
``bench/rpc.py --only cli`` (2 CPUs, Python 3.11), ``nua user count`` took 1.47x
a minimal tinyrpc script that way, against 1.12x with ``--endpoint``, for a
target of 1.2x. So this reads just those three keys from plain ``key = value``
lines and checks them with the schema's own rules (:data:`nua.setting_rules.PORT`
and its neighbours). Anything it does not recognise for certain (other TOML
syntax near them, a placeholder to expand, a value a rule refuses) falls back to
the full loader, so the answer, or the error naming the key and its source, is
always the daemon's own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from nua.setting_rules import ENDPOINT, HOST, PORT, Rule

# The keys read here and the rules the settings schema gives them (a test checks they agree).
RULES: dict[str, Rule] = {"address": HOST, "port": PORT, "endpoint": ENDPOINT}
_KEYS = tuple(RULES)
_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(?:#.*)?$")
_ASSIGN = re.compile(r"""^\s*([A-Za-z0-9_-]+)\s*=\s*("[^"\\]*"|'[^']*'|[0-9]+)\s*(?:#.*)?$""")
_BLANK = re.compile(r"^\s*(?:#.*)?$")
DEFAULTS = Path(__file__).resolve().parent.parent / "params.toml"


class _NeedFullLoadError(Exception):
    """This file or variable needs the real TOML parser and schema."""


def _zmq_keys(text: str) -> dict[str, str | int]:
    """The ``[zmq]`` keys of a TOML text made of simple lines, else :class:`_NeedFullLoadError`."""
    if '"""' in text or "'''" in text:
        raise _NeedFullLoadError  # multi-line strings could hide or fake a table header
    found: dict[str, str | int] = {}
    table = ""
    for line in text.splitlines():
        if _BLANK.match(line):
            continue
        header = _HEADER.match(line)
        if header:
            table = header.group(1)
            continue
        if line.lstrip().startswith("[") or re.match(r"^\s*[\"']?zmq[\"']?\s*[.=]", line):
            raise _NeedFullLoadError  # [a.b], [[array]], a dotted key or an inline table that may name zmq
        if table != "zmq":
            continue
        assign = _ASSIGN.match(line)
        if not assign:
            raise _NeedFullLoadError
        key, raw = assign.groups()
        if key not in _KEYS:
            continue  # a key of the daemon's alone ([zmq] max_clients): the daemon checks it
        value: str | int = int(raw) if raw[0].isdigit() else raw[1:-1]
        if (key == "port") != isinstance(value, int):
            raise _NeedFullLoadError  # a type error: let the full loader report it
        found[key] = value
    return found


def _fast(config: str | None, env: Mapping[str, str]) -> str:
    values = _zmq_keys(DEFAULTS.read_text(encoding="utf-8"))
    path = config if config is not None else env.get("NUA_CONFIG", "")
    if path:
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise _NeedFullLoadError from None
        values.update(_zmq_keys(text))
    exact = {f"NUA_ZMQ_{key.upper()}" for key in _KEYS}
    if any(name.lower().startswith("nua_zmq_") and name not in exact for name in env if name.startswith("NUA_")):
        raise _NeedFullLoadError  # an odd spelling, or an unknown key to report
    for key in _KEYS:
        raw = env.get(f"NUA_ZMQ_{key.upper()}")
        if raw is not None:
            if key == "port" and not raw.strip().isdigit():
                raise _NeedFullLoadError
            values[key] = int(raw) if key == "port" else raw
    if set(values) != set(_KEYS) or any(RULES[key].complaint(value) for key, value in values.items()):
        raise _NeedFullLoadError  # a key missing, or a value to refuse: the loader says which, and where from
    endpoint = str(values["endpoint"]) or f"tcp://{values['address']}:{values['port']}"
    if "{" in endpoint:
        raise _NeedFullLoadError  # a {runtime_dir} placeholder: the loader expands it
    return endpoint


def find_endpoint(config: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The endpoint the daemon binds with these settings (raises :class:`nua.settings.SettingsError`)."""
    env = os.environ if environ is None else environ
    try:
        return _fast(config, env)
    except _NeedFullLoadError:
        from nua import settings  # noqa: PLC0415 - the full loader, only when needed

        # Its deep rules (database driver, scrypt) are the daemon's: the client uses neither.
        return settings.load(config, env, deep=False).zmq.bind_endpoint


__all__ = ["find_endpoint"]
