"""What every transport of the RPC methods sets up the same way: the dispatcher, its pools, denied calls' records.

The ZeroMQ gateway and the HTTP server each run one :class:`~nua.rpc.dispatch.Dispatcher`
in their I/O thread, built here from the same ``[rpc]`` settings: the same
methods, roles, limits, timeouts and audit records, whichever transport a call
came by. Only how bytes arrive and leave differs.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from nua.actors.log_thread import LogThread
from nua.actors.timers import Timers
from nua.model.audit import AuditEntry
from nua.rpc import errors
from nua.rpc.call_log import CallLog
from nua.rpc.dispatch import Dispatcher
from nua.rpc.event_waits import EventWaits
from nua.rpc.services import DB_READER, Services

# Threads hashing passwords (scrypt releases the GIL) and running other offloaded methods.
POOL_THREADS = max(2, min(8, os.cpu_count() or 2))
# Threads of the system lane (sys_status): its calls never queue behind application work.
SYSTEM_POOL_THREADS = 2
# The most calls one batch may hold: each costs the I/O thread its checks and reply (about
# 20 us), so that a batch of 10,000 holds it about 0.2 s; a longer one is refused whole.
MAX_BATCH_CALLS = 10_000


@dataclass
class Lanes:
    """What a transport's dispatcher runs calls with, beside its I/O thread.

    The pools offloaded calls run in (application calls, and system calls), the
    thread that writes the ``rpc_call`` log lines (:mod:`nua.rpc.call_log`), and
    the long-poll waits of ``events_read`` (in ``services.event_waits``, when the
    daemon has timers to end them).
    """

    pool: concurrent.futures.ThreadPoolExecutor
    system_pool: concurrent.futures.ThreadPoolExecutor
    call_lines: LogThread
    services: Services

    @classmethod
    def start(cls, prefix: str, services: Services, log: structlog.stdlib.BoundLogger, timers: Timers | None) -> Lanes:
        if timers is not None:
            settings = services.settings.events
            services.event_waits = EventWaits(services.events, timers, settings.max_waiting)
        return cls(
            concurrent.futures.ThreadPoolExecutor(POOL_THREADS, thread_name_prefix=f"{prefix}-pool"),
            concurrent.futures.ThreadPoolExecutor(SYSTEM_POOL_THREADS, thread_name_prefix=f"{prefix}-system"),
            LogThread(log, f"{prefix}-log"),
            services,
        )

    def shutdown(self) -> None:
        """Stop the pools without waiting (calls not started are cancelled), the waits, then the log lines.

        Called once the I/O thread has answered every waiting call: the lines of those are written.
        """
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.system_pool.shutdown(wait=False, cancel_futures=True)
        if self.services.event_waits is not None:
            self.services.event_waits.close()
            self.services.event_waits = None
        self.call_lines.stop()


def dispatcher(
    services: Services, lanes: Lanes, wakeup: Callable[[], None], log: structlog.stdlib.BoundLogger
) -> Dispatcher:
    """A dispatcher of ``services``' methods under the ``[rpc]`` settings, recording denied calls."""
    rpc = services.settings.rpc

    def record_denied(entry: AuditEntry, needed: str) -> None:
        """Send a denied call's audit record to the DB writer (the I/O thread does not wait for it)."""
        try:
            services.record_denied(entry, needed)
        except errors.RpcError as exc:  # the writer is restarting: the denial is at least in the log
            log.warning("rpc_denied", who=entry.who, method=entry.method, needed=needed, recorded=False, why=str(exc))

    return Dispatcher(
        services.registry,
        executor=lanes.pool,
        system_executor=lanes.system_pool,
        wakeup=wakeup,
        max_in_flight=rpc.max_in_flight,
        max_in_flight_per_client=rpc.max_in_flight_per_client,
        max_reply_bytes=rpc.max_reply_bytes,
        max_batch=MAX_BATCH_CALLS,
        call_timeout_s=rpc.call_timeout_s,
        tracebacks=services.settings.debug.tracebacks,
        log=log,
        record_denied=record_denied,
        call_log=CallLog(lanes.call_lines),
    )


# How long stopping waits for a transport's I/O thread (it ends at its next poll round).
IO_STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class IoFailed:
    """Told by a transport's I/O thread when it dies unexpectedly: its actor fails too, and is restarted."""

    error: str


class IoThreadError(RuntimeError):
    """A transport's I/O thread died; its actor raises it so that the supervisor restarts it."""


class IoThread:
    """The one thread a transport serves its sockets from: started once set up, stopped from the actor.

    ``stopping`` is what the thread's loop checks each round; :meth:`stop` sets it,
    rings the thread's wakeup and waits for the thread, which releases what it owns
    on its way out.
    """

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, target: Callable[[], None], name: str) -> None:
        # Handing sockets to another thread is allowed with a memory barrier; starting the thread is one.
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()

    def stop(self, wakeup: Callable[[], None] | None, log: structlog.stdlib.BoundLogger) -> bool:
        """Ask the thread to end and wait for it; ``False`` (logged) when it did not end in time."""
        self.stopping.set()
        if wakeup is not None:
            wakeup()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(IO_STOP_TIMEOUT_S)
        if thread.is_alive():
            log.error("io_thread_abandoned", thread=thread.name, timeout_s=IO_STOP_TIMEOUT_S)
            return False
        return True


def read_all(services: Services, page: Callable[[str | None], Any], timeout_s: float) -> list[dict[str, Any]]:
    """Every item of a paged read from the DB reader: ``page(after)`` is the command for one page.

    Each page is waited for at most ``timeout_s`` (a start must not hang on an absent reader).
    """
    rows: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        answer = services.ask(DB_READER, page(after)).result(timeout=timeout_s)
        rows += answer["items"]
        after = answer["next"]
        if after is None:
            return rows


__all__ = [
    "IO_STOP_TIMEOUT_S",
    "MAX_BATCH_CALLS",
    "IoFailed",
    "IoThread",
    "IoThreadError",
    "Lanes",
    "dispatcher",
    "read_all",
]
