"""The exit codes of ``nua-orchestrator`` and of the daemon process.

LSB init-script exit codes. A degraded daemon (running, but e.g. its database
unavailable) is STATUS_RUNNING: it runs and answers, as `systemctl status` calls
an active unit active whatever it logs; what is wrong is in the report.

A module of its own so that the daemon process (:mod:`nua.daemon.runner`) and the
commands that start it (:mod:`nua.daemon.control`) share them without importing
each other.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_CONFIGURED = 6
EXIT_NOT_RUNNING = 7  # an action on a daemon that does not run (LSB: program is not running): reload
STATUS_RUNNING = 0
STATUS_DEAD_PID_FILE = 1
STATUS_NOT_RUNNING = 3
STATUS_UNKNOWN = 4

__all__ = [
    "EXIT_FAILED",
    "EXIT_NOT_CONFIGURED",
    "EXIT_NOT_RUNNING",
    "EXIT_OK",
    "STATUS_DEAD_PID_FILE",
    "STATUS_NOT_RUNNING",
    "STATUS_RUNNING",
    "STATUS_UNKNOWN",
]
