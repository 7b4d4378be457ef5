"""``nua.start()``, ``stop()``, ``restart()``, ``status()``: the daemon's commands as functions with results.

Each returns a :class:`Result` (the LSB exit code the command would exit with,
the daemon's state, pid and endpoint, and the message the command would print)
and prints nothing: a script decides what to show. They run the same code as
``nua-orchestrator`` (:mod:`nua.daemon.control`), which collects its lines here
instead of printing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nua.daemon import control
from nua.daemon.exit_codes import EXIT_OK


@dataclass(frozen=True)
class Result:
    """What a command did, or found.

    ``code`` is its LSB exit code (``start``/``stop``/``restart``: 0 done, 1 failed,
    6 not configured; ``status``: 0 running, 1 dead with a pid file left, 3 not
    running, 4 unknown). ``state``: ``running``, ``degraded``, ``stopped``,
    ``dead`` or ``unknown`` (after the command). ``pid`` and ``endpoint``: the
    running daemon's, when there is one. ``message``: the command's own words.
    ``report``: ``status``'s whole report (``sys_status`` included), else empty.
    """

    code: int
    state: str
    pid: int | None
    endpoint: str | None
    message: str
    report: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the command succeeded (``status``: whether the daemon runs)."""
        return self.code == EXIT_OK


def _after(code: int, lines: list[str], config: str | Path | None) -> Result:
    """The result of a command that exited ``code`` having said ``lines``: the daemon's state as it is now."""
    found = _status(config)
    return Result(code, found.state, found.pid, found.endpoint, "; ".join(lines), found.report)


def _status(config: str | Path | None) -> Result:
    report = control.status(config)
    running = bool(report.get("running"))
    return Result(
        code=int(report["code"]),
        state=str(report.get("state")),
        pid=report.get("pid") if running else None,
        endpoint=report.get("endpoint") if running else None,
        message=str(report.get("message")),
        report=report,
    )


def start(config: str | Path | None = None) -> Result:
    """Start the daemon in the background; return once it serves (or has failed)."""
    with control.collecting() as lines:
        code = control.start(config)
    return _after(code, lines, config)


def stop(config: str | Path | None = None) -> Result:
    """Stop the running daemon gracefully; return once it is gone."""
    with control.collecting() as lines:
        code = control.stop(config)
    return _after(code, lines, config)


def restart(config: str | Path | None = None) -> Result:
    """Stop the daemon, wait until it is gone, and start a new one."""
    with control.collecting() as lines:
        code = control.restart(config)
    return _after(code, lines, config)


def status(config: str | Path | None = None) -> Result:
    """Whether the daemon runs, and its report (``report``: pid, uptime, endpoint, actor tree ...)."""
    with control.collecting():
        return _status(config)


__all__ = ["Result", "restart", "start", "status", "stop"]
