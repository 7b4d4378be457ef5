"""nua: the orchestrator daemon of a small self-hosting platform.

``nua.start()``, ``nua.stop()``, ``nua.restart()`` and ``nua.status()`` control the
daemon from Python as ``nua-orchestrator`` does from a shell; each returns a
:class:`nua.daemon.api.Result` (LSB code, state, pid, endpoint, message) and prints
nothing. They are imported lazily so that ``import nua`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nua.version import VERSION

if TYPE_CHECKING:
    from pathlib import Path

    from nua.daemon.api import Result

__version__ = VERSION


def start(config: str | Path | None = None) -> Result:
    """Start the daemon in the background; return once it serves (or has failed)."""
    from nua.daemon import api  # noqa: PLC0415 - keep `import nua` light

    return api.start(config)


def stop(config: str | Path | None = None) -> Result:
    """Stop the running daemon gracefully; return once it is gone."""
    from nua.daemon import api  # noqa: PLC0415

    return api.stop(config)


def restart(config: str | Path | None = None) -> Result:
    """Stop the daemon, wait until it is gone, and start a new one."""
    from nua.daemon import api  # noqa: PLC0415

    return api.restart(config)


def status(config: str | Path | None = None) -> Result:
    """Whether the daemon runs: its LSB code, state, pid, endpoint, message and whole report."""
    from nua.daemon import api  # noqa: PLC0415

    return api.status(config)
