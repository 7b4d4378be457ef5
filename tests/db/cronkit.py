"""A cron actor under test: its DB writer and reader, a manual clock and timers, and a journal of its runs.

The clock is the manual timers' own (``T0`` plus their seconds), so that moving the
timers on moves the wall clock the actor reads: no test waits for a real minute.
Each wait is on a condition (the journal is told each ``job.run`` event), never a sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pykka
from dbkit import ExitLog

from nua.actors.call import call
from nua.actors.cron import CRON, Cron, CronHost, CronStatus
from nua.actors.db_reader import DbReader
from nua.actors.db_writer import DbWriter
from nua.actors.directory import DB_READER, DB_WRITER, Directory
from nua.actors.process_loop import ProcessLoop
from nua.actors.supervised import ChildContext
from nua.actors.timers import ManualTimers
from nua.job_settings import CallAction, JobConfig, parse_job
from nua.model import commands as cmd
from nua.settings import Settings

WAIT_S = 10.0
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Journal:
    """Every event the actor published, and a way to wait for some."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, kind: str, **facts: Any) -> None:
        with self._cond:
            self.events.append({"kind": kind, **facts})
            self._cond.notify_all()

    def count(self, status: str, job: str | None = None) -> int:
        with self._cond:
            return sum(1 for e in self.events if e["status"] == status and job in (None, e.get("job")))

    def wait(self, status: str, count: int = 1, job: str | None = None) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.count_locked(status, job) >= count, WAIT_S):
                msg = f"{count} x {status} not seen within {WAIT_S} s: {self.events}"
                raise AssertionError(msg)

    def count_locked(self, status: str, job: str | None) -> int:
        return sum(1 for e in self.events if e["status"] == status and job in (None, e.get("job")))

    def wait_change(self, timeout: float) -> None:
        with self._cond:
            seen = len(self.events)
            self._cond.wait_for(lambda: len(self.events) != seen, timeout)


class Actions:
    """The RPC layer's stand-in: records each call; answers at once unless ``hold`` keeps the futures."""

    def __init__(self) -> None:
        self.calls: list[tuple[CallAction, str, str]] = []
        self.hold = False
        self.pending: list[Future[Any]] = []
        self.refuse: str | None = None
        self._lock = threading.Lock()

    def check(self, action: CallAction, role: str) -> str | None:
        return self.refuse

    def call(self, action: CallAction, who: str, role: str) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            self.calls.append((action, who, role))
            if self.hold:
                self.pending.append(future)
                return future
        future.set_result({"called": action.method})
        return future

    def release(self) -> None:
        with self._lock:
            pending, self.pending = self.pending, []
        for future in pending:
            future.set_result("released")


def job(name: str, **table: Any) -> JobConfig:
    table.setdefault("zone", "UTC")
    made, problems = parse_job(name, table, "test")
    assert made is not None, problems
    return made


class CronRig:
    """One daemon's worth of cron: a writer, a reader and a cron actor on ``settings``'s database."""

    def __init__(self, settings: Settings, root: Path, timers: ManualTimers, name: str = "d1") -> None:
        self.settings = settings
        self.timers = timers
        self.directory = Directory()
        self.journal = Journal()
        self.actions = Actions()
        self.exits = ExitLog()
        self.loop = ProcessLoop()
        self.loop.start()
        self.host = CronHost(
            self.loop,
            timers,
            root / f"jobs-{name}",
            actions=self.actions,
            instance=f"test/{name}",
            clock=lambda: T0 + timedelta(seconds=timers.now),
            publish=self.journal,
            max_sleep_s=10**9,
        )
        self.writer = DbWriter.start(ChildContext(DB_WRITER, 1, self.exits), settings, check_interval_s=None)
        self.writer.ask(cmd.CountUsers())  # the schema exists before anything reads it
        self.reader = DbReader.start(ChildContext(DB_READER, 1, self.exits), settings, check_interval_s=None)
        self.directory.register(DB_WRITER, self.writer)
        self.directory.register(DB_READER, self.reader)
        self.cron: pykka.ActorRef[Any] | None = None
        self.generation = 0

    def start(self, *file_jobs: JobConfig) -> pykka.ActorRef[Any]:
        self.generation += 1
        context = ChildContext(CRON, self.generation, self.exits)
        ref = Cron.start(context, self.host, file_jobs, directory=self.directory)
        ref.ask(CronStatus(), timeout=WAIT_S)  # set up
        self.directory.register(CRON, ref)
        self.cron = ref
        self.advance(0)  # what was due at the start (its timer's delay is 0)
        return ref

    def stop(self) -> None:
        if self.cron is not None and self.cron.is_alive():
            self.directory.unregister(CRON, self.cron)
            self.cron.stop(timeout=WAIT_S)

    def db(self, command: Any) -> Any:
        return call(self.writer, command).result(WAIT_S)

    def status(self) -> dict[str, Any]:
        assert self.cron is not None
        return dict(self.cron.ask(CronStatus(), timeout=WAIT_S))

    def settle(self) -> None:
        """Until no claim is in flight and what the actions answered meanwhile is recorded."""
        if self.cron is None or not self.cron.is_alive():
            return
        for _ in range(1000):
            if self.status()["claiming"] == 0:
                break
            self.journal.wait_change(0.05)
        self.status()  # the ends the answered actions told while the claims were handled
        self.db(cmd.CountUsers())  # the writer has committed what was sent before

    def advance(self, seconds: float) -> None:
        self.timers.advance(seconds)
        self.settle()

    def advance_to(self, when: datetime) -> None:
        self.advance((when - self.host.clock()).total_seconds())

    def runs(self, name: str) -> list[dict[str, Any]]:
        """The job's runs, oldest first."""
        found: list[dict[str, Any]] = []
        after = None
        while True:
            page = self.db(cmd.ListRuns(name, limit=1000, after=after))
            found += page["items"]
            after = page["next"]
            if after is None:
                return list(reversed(found))

    def close(self) -> None:
        self.stop()
        for ref in (self.reader, self.writer):
            if ref.is_alive():
                ref.stop(timeout=WAIT_S)
        self.loop.stop()


@contextmanager
def rig(settings: Settings, root: Path, timers: ManualTimers | None = None, name: str = "d1") -> Iterator[CronRig]:
    made = CronRig(settings, root, timers or ManualTimers(), name)
    try:
        yield made
    finally:
        made.close()
