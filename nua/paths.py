"""The per-user directories the settings' path placeholders stand for.

A leaf, importing only the standard library: the settings loader expands
``{runtime_dir}``, ``{state_dir}``, ``{log_dir}`` and ``{config_dir}`` with it, and the ``nua``
CLI's quick lookup of the daemon (:mod:`nua.client_settings`) does too, without
loading the whole settings schema.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# The packaged defaults: the settings loader's base, and the quick client lookup's.
DEFAULTS_FILE = Path(__file__).with_name("params.toml")


def private_dirs(env: Mapping[str, str]) -> dict[str, str]:
    """Per-user directories: the daemon never writes to a shared, world-writable path.

    ``config_dir`` is the account's own (``$XDG_CONFIG_HOME/nua`` or
    ``~/.config/nua``, root's included): it holds the account's client key, which
    is the account's, not the daemon's.
    """
    config_home = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    config_dir = f"{config_home}/nua"
    if os.geteuid() == 0:
        return {"runtime_dir": "/run/nua", "state_dir": "/var/lib/nua", "log_dir": "/var/log/nua",
                "config_dir": config_dir}  # fmt: skip
    runtime = env.get("XDG_RUNTIME_DIR")
    runtime_dir = f"{runtime}/nua" if runtime else f"/tmp/nua-{os.getuid()}"  # noqa: S108 - made 0700 and owner-checked
    state_home = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return {
        "runtime_dir": runtime_dir,
        "state_dir": f"{state_home}/nua",
        "log_dir": f"{state_home}/nua",
        "config_dir": config_dir,
    }


def expand(value: str, dirs: Mapping[str, str]) -> str:
    """``value`` with each known placeholder replaced; unknown ``{names}`` are left as written."""
    return value.format_map(_KeepUnknown(dirs)) if "{" in value else value


class _KeepUnknown(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


__all__ = ["DEFAULTS_FILE", "expand", "private_dirs"]
