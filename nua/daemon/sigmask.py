"""The signals the daemon handles, held back from its first instruction until its handlers are in place.

Until the daemon has installed its handlers, ``SIGHUP`` and ``SIGTERM`` have their
default action (the process dies with 129 or 143, mid-start) and ``SIGINT`` raises
``KeyboardInterrupt`` somewhere in an import. Blocking them instead keeps them
pending; unblocking once the handlers and the wakeup pipe exist delivers them
then, so a ``SIGTERM`` during start-up becomes a graceful stop right after it,
and a ``SIGHUP`` a reload. A thread started meanwhile inherits the mask, which
is harmless: a process-directed signal goes to a thread that does not block it,
and the main thread unblocks. The mask also survives ``fork`` and ``exec``.
"""

from __future__ import annotations

import signal

HANDLED = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2})


def block() -> set[int | signal.Signals]:
    """Hold the handled signals pending in this thread; the mask before, for :func:`restore`."""
    return signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)


def unblock() -> None:
    """Deliver the handled signals again, those pending first."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)


def restore(previous: set[int | signal.Signals]) -> None:
    """Put back the mask :func:`block` returned."""
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)
