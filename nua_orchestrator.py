"""The original project's import name, kept for its scripts: ``import nua_orchestrator as o; o.restart()``.

A compatibility module and nothing more: ``start``, ``stop``, ``restart`` and
``status`` are :mod:`nua`'s own (each returns a :class:`Result` and prints
nothing). New code imports :mod:`nua`.
"""

from __future__ import annotations

from nua import __version__, restart, start, status, stop
from nua.daemon.api import Result

__all__ = ["Result", "__version__", "restart", "start", "status", "stop"]
