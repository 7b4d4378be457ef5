"""nua: the orchestrator daemon of a small self-hosting platform.

``nua.start()``, ``nua.stop()``, ``nua.restart()`` and ``nua.status()`` control the
daemon from Python as ``nua-orchestrator`` does from a shell. They are imported
lazily so that ``import nua`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import Any

from nua.version import VERSION

__version__ = VERSION


def start(config: str | None = None) -> int:
    """Start the daemon in the background; return an exit code as the CLI would."""
    from nua.daemon import control  # noqa: PLC0415 - keep `import nua` light

    return control.start(config)


def stop(config: str | None = None) -> int:
    """Stop the running daemon gracefully; return an exit code as the CLI would."""
    from nua.daemon import control  # noqa: PLC0415

    return control.stop(config)


def restart(config: str | None = None) -> int:
    """Stop the daemon, wait until it is gone, and start a new one."""
    from nua.daemon import control  # noqa: PLC0415

    return control.restart(config)


def status(config: str | None = None) -> dict[str, Any]:
    """The daemon's state: ``{"running": bool, "pid": ..., "tree": ...}``."""
    from nua.daemon import control  # noqa: PLC0415

    return control.status(config)
