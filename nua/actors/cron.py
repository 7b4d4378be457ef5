"""The ``cron`` actor: runs each job's action at its scheduled times, at most once per fire.

A permanent child of the root supervisor. It holds every job in memory, in a heap
ordered by the instant its next fire is due, and sleeps on one timer until the
first of them (no polling: thousands of idle jobs cost nothing until one is due).
The sleep is never longer than :data:`MAX_SLEEP_S`, so that a change of the wall
clock (NTP stepping it) is noticed within that time.

When fires are due it decides their fates (:mod:`nua.actors.cron_plan`) and
claims them through the DB writer (:class:`~nua.model.commands.ClaimFires`: the
next fire advanced and a run row written per fire, in one transaction, only if the
job is as this actor last saw it); only once the claim is durable does a run's
action start. So a fire runs at most once across a crash (a ``kill -9`` mid-run
leaves the run ``running``: the next daemon marks it ``interrupted`` and does not
run it again) and across daemons sharing one database (the second claim of a fire
changes nothing).

Actions: an RPC call (``call``), made through :class:`JobActions` (the RPC layer's,
given by the daemon) as the key that added the job, with the role that key has at
each run, and audited as that key's calls are; or a command, run once under the services' process rules
(:func:`nua.actors.os_process.launch`, the daemon's
:class:`~nua.actors.process_loop.ProcessLoop`): its output goes to
``{log_dir}/jobs/NAME.log`` and the last of it to the run's ``detail``; past
``timeout_s`` its process group gets SIGTERM, then SIGKILL ``KILL_AFTER_S`` later,
and the run is ``timed_out``.

Its start never fails for want of the database (an outage, PostgreSQL down, the
file gone): a cron that could not read its jobs starts holding none, reports the
condition to :class:`~nua.actors.health.Health` (component ``cron``) and reads them
again on a timer, :data:`LOAD_RETRY_S` doubled up to :data:`LOAD_RETRY_MAX_S`,
until it can; a start that raised would have the supervisor restart it at once,
reach its intensity, and end the whole daemon.

What outlives the actor lives in :class:`CronHost` (the runs in progress), and the
actions' ends are told to whichever actor is registered as ``cron`` when they come:
a crash of this actor neither loses nor repeats a fire, and a run in progress is
recorded when it ends by the actor that replaced it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import signal
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pykka

from nua.actors import os_process
from nua.actors.call import call
from nua.actors.cron_plan import Plan, due_at, next_fire, plan
from nua.actors.cron_runs import (
    KILL_AFTER_S,
    CommandRun,
    LiveRun,
    LiveRuns,
    RunEnded,
    daemon_instance,
    end_left_running,
    error_text,
    instance_alive,
    job_mark,
    result_text,
)
from nua.actors.directory import DB_READER, DB_WRITER, Directory
from nua.actors.health import Health
from nua.actors.process_loop import ProcessLoop
from nua.actors.supervised import ChildContext, SupervisedActor, describe
from nua.actors.timers import Cancel, Timers
from nua.job_settings import CallAction, JobConfig, parse_job
from nua.model import commands as cmd
from nua.model.errors import ModelError

CRON = "cron"
# The longest sleep: a wall clock stepped meanwhile is noticed within it.
MAX_SLEEP_S = 60.0
# A job whose claim could not be written is tried again this much later, doubled at each failure in a row
# up to the most (an outage costs a look a minute per job, not one a second).
RETRY_S = 1.0
CLAIM_RETRY_MAX_S = 60.0
# How long setup and requests wait for the database.
DB_WAIT_S = 30.0
# A load of the jobs that failed (an outage) is tried again this much later, doubled each time up to the most.
LOAD_RETRY_S = 1.0
LOAD_RETRY_MAX_S = 60.0
PAGE = 1000
PRUNE_INTERVAL_S = 3600.0
PRUNE_MOST = 10_000


def utc_now() -> datetime:
    return datetime.now(UTC)


def no_events(kind: str, **facts: Any) -> None:
    """The event publisher until the daemon gives one."""


class JobActions(Protocol):
    """How a job's ``call`` is checked and made (the RPC layer's, given by the daemon)."""

    def check(self, action: CallAction, role: str) -> str | None:
        """Why ``action`` cannot be made with ``role`` (no such method, role too low, bad params); ``None``: it can."""

    def call(self, action: CallAction, who: str, role: str) -> Future[Any]:
        """Make the call as the key ``who`` with ``role``, audited; the future resolves with its JSON result."""


@dataclass
class CronHost:
    """What the cron actor's incarnations share: the process loop, the timers, the clock, the runs in progress."""

    loop: ProcessLoop | None
    timers: Timers
    log_dir: Path
    actions: JobActions | None = None
    instance: str = field(default_factory=daemon_instance)
    # The wall clock, UTC (tests give a manual one).
    clock: Callable[[], datetime] = utc_now
    # The event hub's publish: one "job.run" event per change of a run's status.
    publish: Callable[..., Any] = no_events
    live: LiveRuns = field(default_factory=LiveRuns)
    keep_days: float = 30.0
    # The longest sleep (tests with a manual clock make it longer: one timer per fire).
    max_sleep_s: float = MAX_SLEEP_S
    # Where a cron that cannot read its jobs (an outage) says so.
    health: Health = field(default_factory=Health)


# -- requests (asks or calls) -----------------------------------------------------------------


@dataclass(frozen=True)
class ReloadJob:
    """Read job ``name`` again from the database (added, changed, paused, resumed or removed); answered with None."""

    name: str


@dataclass(frozen=True)
class RunNow:
    """Run job ``name`` once now (a manual run); answered with the run's id."""

    name: str


@dataclass(frozen=True)
class CronStatus:
    """Answered with the jobs held, the runs in progress and the next wake-up."""


class UnknownJobError(LookupError):
    """A request named a job the actor does not hold."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no job {name!r}")
        self.name = name


class JobBusyError(RuntimeError):
    """A manual run of a job that has ``max_running`` runs running."""


class JobsNotLoadedError(RuntimeError):
    """A manual run asked of a cron that has not read its jobs yet (the database is unavailable)."""


# -- what the timers, the writer and the actions tell the actor ----------------------------------


@dataclass(frozen=True)
class _Wake:
    serial: int


@dataclass(frozen=True)
class _Claimed:
    name: str
    version: int
    plan: Plan
    result: Any
    error: BaseException | None


@dataclass(frozen=True)
class _Timeout:
    run_id: int
    kill: bool


@dataclass(frozen=True)
class _Prune:
    pass


@dataclass(frozen=True)
class _Load:
    pass


@dataclass
class _Job:
    config: JobConfig
    version: int
    next: datetime | None
    owner: str
    owner_role: str
    invalid: str | None = None
    claiming: bool = False
    held: bool = False
    # How long after a failed claim it is tried again (doubled at each failure in a row).
    retry_s: float = RETRY_S

    @property
    def name(self) -> str:
        return self.config.name


class Cron(SupervisedActor):
    """Holds the jobs and runs their fires; see the module's doc."""

    def __init__(
        self,
        context: ChildContext,
        host: CronHost,
        file_jobs: tuple[JobConfig, ...] = (),
        *,
        directory: Directory,
    ) -> None:
        super().__init__(context)
        self.host = host
        self.file_jobs = file_jobs
        # Each file job with its table as stored.
        self._file_tables = {config.name: (config, config.as_table()) for config in file_jobs}
        self.directory = directory
        self.jobs: dict[str, _Job] = {}
        self._heap: list[tuple[datetime, int, str, int]] = []
        self._seq = itertools.count()
        self._serial = 0
        self._timer: Cancel | None = None
        self._wake_at: datetime | None = None
        self._prune_timer: Cancel | None = None
        # Whether the jobs have been read (none are held until then); the next retry's delay; its timer.
        self._loaded = False
        self._load_delay_s = LOAD_RETRY_S
        self._load_timer: Cancel | None = None
        # Whether the last claim failed: an outage is logged when it begins and when it ends, not at each retry.
        self._claims_failing = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def setup(self) -> None:
        self._load()

    def _load(self) -> None:
        """Store the file's jobs and read every job; on failure (an outage) say so and try again later."""
        self._load_timer = None
        try:
            now = self.host.clock()
            self._sync_file_jobs(now, self._stored())
            self._interrupt_stale()
            rows = self._stored()
        except Exception as exc:  # noqa: BLE001 - whatever the database's trouble, cron runs and reads again later
            self._load_failed(exc)
            return
        for row in rows:
            self._hold(row)
        self._loaded = True
        self._file_tables = {}  # needed by the start only: a job read again later is parsed again
        self._arm()
        self._prune_later(0.0)
        if self.host.health.recover(CRON):
            self.log.warning("cron_jobs_readable")
        self.log.info("cron_started", jobs=len(self.jobs), instance=self.host.instance)

    def _woken(self, serial: int) -> None:
        if serial == self._serial:  # else a timer cancelled too late
            self._timer = None
            self._due()

    def _load_again(self) -> None:
        if not self._loaded:
            self._load()

    def _reload_asked(self, name: str) -> None:
        if self._loaded:  # until then, the load reads every job as it is
            self._reload(name)
            self._arm()

    def _load_failed(self, error: BaseException) -> None:
        delay = self._load_delay_s
        self._load_delay_s = min(delay * 2, LOAD_RETRY_MAX_S)
        reason = f"the cron jobs cannot be read: {describe(error)}"
        if self.host.health.degrade(CRON, reason):
            self.log.error("cron_jobs_unreadable", error=describe(error), retry_in_s=delay)
        ref = self.actor_ref

        def again() -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_Load())

        self._load_timer = self.host.timers.call_later(delay, again)

    def cleanup(self, error: BaseException | None) -> None:
        self._cancel_timer()
        if self._load_timer is not None:
            self._load_timer()
        if self._prune_timer is not None:
            self._prune_timer()
        if error is not None:
            return  # the runs in progress go on: the next incarnation records their ends
        self._stop_runs()

    def on_receive(self, message: Any) -> Any:  # noqa: PLR0911 - one return per message
        match message:
            case _Wake(serial):
                self._woken(serial)
                return None
            case _Claimed():
                self._claimed(message)
                return None
            case RunEnded():
                self._run_ended(message)
                return None
            case _Timeout(run_id, kill):
                self._timeout(run_id, kill=kill)
                return None
            case _Prune():
                self._prune()
                return None
            case _Load():
                self._load_again()
                return None
            case ReloadJob(name):
                self._reload_asked(name)
                return None
            case RunNow(name):
                return self._run_now(name)
            case CronStatus():
                return self.status()
            case _:
                return super().on_receive(message)

    # -- the database --------------------------------------------------------------------------------

    def _db(self, actor: str, command: Any) -> Future[Any]:
        ref = self.directory.lookup(actor)
        if ref is None:
            future: Future[Any] = Future()
            future.set_exception(ModelError(f"{actor} is not running"))
            return future
        try:
            return call(ref, command)
        except pykka.ActorDeadError as exc:
            future = Future()
            future.set_exception(exc)
            return future

    def _db_now(self, actor: str, command: Any) -> Any:
        return self._db(actor, command).result(DB_WAIT_S)

    def _sync_file_jobs(self, now: datetime, stored: list[dict[str, Any]]) -> None:
        """Store the settings file's jobs; a job stored unchanged keeps its next fire (none is computed for it)."""
        rows = {row["name"]: row for row in stored}
        jobs = []
        for name, (config, table) in self._file_tables.items():
            row = rows.get(name)
            unchanged = row is not None and _same_file_job(row, table, config)
            first = None if config.paused or unchanged else next_fire(config, now)
            jobs.append(cmd.FileJob(name, table, config.role, config.paused, first))
        done = self._db_now(DB_WRITER, cmd.SyncFileJobs(tuple(jobs)))
        # Changed meanwhile (a pause through RPC between the read and the sync): its first fire, now.
        for name in (*done["changed"], *done["added"]):
            config = self._file_tables[name][0]
            row = rows.get(name)
            if not config.paused and row is not None and _same_file_job(row, self._file_tables[name][1], config):
                self._db_now(DB_WRITER, cmd.SetJobPaused(name, paused=False, next_fire_at=next_fire(config, now)))
        if done["changed"] or done["added"] or done["removed"]:
            self.log.info("cron_file_jobs_synced", **{k: v for k, v in done.items() if k != "kept"})

    def _interrupt_stale(self) -> None:
        """Mark ``interrupted`` the runs left ``running`` by a daemon that is gone (or by this one, never started)."""
        stale: dict[int, str] = {}
        live = self.host.live.snapshot()
        for run in self._db_now(DB_READER, cmd.ListRunning()):
            owner = run["claimed_by"]
            if owner == self.host.instance:
                if run["id"] not in live:
                    stale[run["id"]] = run["job"]
            elif instance_alive(owner) is False:
                stale[run["id"]] = run["job"]
                end_left_running(run["job"], owner, self.log)
        if stale:
            self._db_now(DB_WRITER, cmd.InterruptRuns(tuple(stale), "the daemon running it ended before it did"))
            self.log.warning("cron_runs_interrupted", runs=sorted(stale))
            for run_id, job in stale.items():
                self.host.publish("job.run", job=job, run=run_id, status="interrupted")

    def _stored(self) -> list[dict[str, Any]]:
        """Every stored job, page by page, from the DB reader."""
        rows: list[dict[str, Any]] = []
        after = None
        while True:
            page = self._db_now(DB_READER, cmd.ListJobs(limit=PAGE, after=after))
            rows += page["items"]
            after = page["next"]
            if after is None:
                return rows

    def _hold(self, row: Mapping[str, Any]) -> None:
        """Take the stored job ``row`` (new or changed) into the heap; drop it when it is no longer valid."""
        name = row["name"]
        known = self._file_tables.get(name)
        config: JobConfig | None
        problems: list[str] = []
        if known is not None and _same_file_job(row, known[1], known[0]):
            config = known[0]  # as the settings loader checked it: not parsed again
        else:
            config, problems = parse_job(name, row["config"], f"stored job {name}", default_zone="UTC")
        if config is None:
            self.log.error("cron_job_invalid", job=name, problems=problems)
            self.jobs.pop(name, None)
            return
        stored_next = _parse_time(row["next_fire_at"])
        job = _Job(config, row["version"], None if row["paused"] else stored_next, row["owner"], row["owner_role"])
        if isinstance(config.action, CallAction):
            actions = self.host.actions
            job.invalid = (
                "RPC calls are not available (no gateway registry)"
                if actions is None
                else actions.check(config.action, job.owner_role)
            )
            if job.invalid is not None:
                self.log.error("cron_job_call_invalid", job=name, reason=job.invalid)
        old = self.jobs.get(name)
        if old is not None:
            job.claiming, job.retry_s = old.claiming, old.retry_s
        self.jobs[name] = job
        self._push(job)

    def _reload(self, name: str) -> None:
        """Read job ``name`` again; a failed read is tried again :data:`RETRY_S` later (the change is durable)."""
        try:
            row = self._db_now(DB_READER, cmd.GetJob(name))
        except ModelError as exc:
            if exc.kind == "not_found":
                self.jobs.pop(name, None)
                return
            error: BaseException = exc
        except (TimeoutError, pykka.ActorDeadError) as exc:
            error = exc
        else:
            self._hold(row)
            return
        self.log.warning("cron_job_unreadable", job=name, error=describe(error), retry_in_s=RETRY_S)
        ref = self.actor_ref

        def again() -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(ReloadJob(name))

        self.host.timers.call_later(RETRY_S, again)

    # -- sleeping until the next fire -------------------------------------------------------------------

    def _push(self, job: _Job) -> None:
        if job.next is not None and not job.claiming:
            heapq.heappush(self._heap, (due_at(job.config, job.next), next(self._seq), job.name, job.version))

    def _valid(self, entry: tuple[datetime, int, str, int]) -> _Job | None:
        due, _, name, version = entry
        job = self.jobs.get(name)
        if job is None or job.version != version or job.next is None or job.claiming:
            return None
        # An entry for an earlier next fire is stale; one at or after it (a retry) is due.
        return job if due >= due_at(job.config, job.next) else None

    def _arm(self) -> None:
        while self._heap and self._valid(self._heap[0]) is None:
            heapq.heappop(self._heap)
        if not self._heap:
            self._cancel_timer()
            self._wake_at = None
            return
        due = self._heap[0][0]
        if self._timer is not None and self._wake_at is not None and self._wake_at <= due:
            return  # already waking up earlier (a wake finds the heap as it is then)
        self._cancel_timer()
        delay = min(max((due - self.host.clock()).total_seconds(), 0.0), self.host.max_sleep_s)
        self._serial += 1
        serial = self._serial
        ref = self.actor_ref
        self._wake_at = due

        def wake() -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_Wake(serial))

        self._timer = self.host.timers.call_later(delay, wake)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer()
            self._timer = None
        self._wake_at = None

    def _due(self) -> None:
        self._wake_at = None
        now = self.host.clock()
        while self._heap and self._heap[0][0] <= now:
            job = self._valid(heapq.heappop(self._heap))
            if job is not None:
                self._decide(job, now)
        self._arm()

    # -- deciding and claiming fires ------------------------------------------------------------------

    def _running_since(self, name: str) -> list[datetime]:
        return [run.started for run in self.host.live.snapshot().values() if run.job == name]

    def _decide(self, job: _Job, now: datetime) -> None:
        decided = plan(job.config, job.next, now, self._running_since(job.name))
        if decided is None:
            self._push(job)
            return
        if not decided.fires and decided.new_next == job.next:
            job.held = True  # looked at again when a run ends
            return
        job.claiming = True
        job.held = decided.held
        command = cmd.ClaimFires(job.name, job.version, job.next, decided.new_next, decided.fires, self.host.instance)
        ref = self.actor_ref
        name, version = job.name, job.version

        def claimed(future: Future[Any]) -> None:  # in the writer's thread
            error = future.exception()
            result = None if error is not None else future.result()
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_Claimed(name, version, decided, result, error))

        self._db(DB_WRITER, command).add_done_callback(claimed)

    def _claimed(self, claim: _Claimed) -> None:
        job = self.jobs.get(claim.name)
        if job is not None:
            job.claiming = False
        if claim.error is not None:
            self._claim_failed(claim, claim.error, job)
            return
        self._claim_worked(claim, job)
        result = claim.result
        if not result["claimed"]:
            self.log.info("cron_claim_lost", job=claim.name)
            self._reload(claim.name)  # another daemon (or a change) got there first: as it is now
            self._arm()
            return
        self._start_claimed(claim, result["recorded"], job)
        if job is not None and job.version == claim.version:
            job.next = claim.plan.new_next
            if claim.plan.more:
                self._decide(job, self.host.clock())
            elif not job.held:
                self._push(job)
        elif job is not None:
            self._push(job)  # read again meanwhile (changed): as it is now
        self._arm()

    def _start_claimed(
        self, claim: _Claimed, recorded: list[tuple[datetime, str, int | None]], job: _Job | None
    ) -> None:
        """Announce each fire recorded by the claim and start its runs (their rows are durable now)."""
        started = self.host.clock()
        details = {fire.scheduled_at: fire.detail for fire in claim.plan.fires}
        for scheduled_at, status, run_id in recorded:
            facts = {"job": claim.name, "scheduled_at": scheduled_at.isoformat(), "status": status}
            if run_id is not None:
                self.host.publish("job.run", run=run_id, **facts)
                self._start(run_id, claim.name, started, job)
            else:
                self.host.publish("job.run", detail=details.get(scheduled_at, ""), **facts)

    def _claim_failed(self, claim: _Claimed, error: BaseException, job: _Job | None) -> None:
        """Log the first failure of an outage only; try the job again later, later each time."""
        if not self._claims_failing:
            self._claims_failing = True
            self.log.error("cron_claim_failed", job=claim.name, error=describe(error))
        if job is not None and job.version == claim.version:
            self._retry(job)
        self._arm()

    def _claim_worked(self, claim: _Claimed, job: _Job | None) -> None:
        if self._claims_failing:
            self._claims_failing = False
            self.log.warning("cron_claims_recovered", job=claim.name)
        if job is not None:
            job.retry_s = RETRY_S

    def _retry(self, job: _Job) -> None:
        delay = job.retry_s
        job.retry_s = min(delay * 2, CLAIM_RETRY_MAX_S)
        heapq.heappush(
            self._heap, (self.host.clock() + timedelta(seconds=delay), next(self._seq), job.name, job.version)
        )

    # -- runs -------------------------------------------------------------------------------------------

    def _tell_cron(self, message: Any) -> None:
        """Tell ``message`` to the actor registered as cron now (this one, or the one that replaced it)."""
        ref = self.directory.lookup(CRON) or self.actor_ref
        with contextlib.suppress(pykka.ActorDeadError):
            ref.tell(message)

    def _start(self, run_id: int, name: str, started: datetime, job: _Job | None) -> None:
        live = LiveRun(name, started)
        self.host.live.add(run_id, live)
        tell = self._tell_cron
        if job is None:
            tell(RunEnded(run_id, name, "failed", "the job was removed before its run started"))
            return
        if job.invalid is not None:
            tell(RunEnded(run_id, name, "failed", job.invalid))
            return
        action = job.config.action
        if isinstance(action, CallAction):
            if self.host.actions is None:
                tell(RunEnded(run_id, name, "failed", "RPC calls are not available"))
                return
            try:
                future = self.host.actions.call(action, job.owner, job.owner_role)
            except Exception as exc:  # noqa: BLE001 - a call that cannot start is a failed run
                tell(RunEnded(run_id, name, "failed", describe(exc) or "failed"))
                return

            def called(done: Future[Any]) -> None:  # in the call's thread
                error = done.exception()
                if error is not None:
                    tell(RunEnded(run_id, name, "failed", error_text(error)))
                else:
                    tell(RunEnded(run_id, name, "ok", result_text(done.result())))

            future.add_done_callback(called)
            return
        loop = self.host.loop
        if loop is None:
            tell(RunEnded(run_id, name, "failed", "commands are not available (no process loop)"))
            return
        command = CommandRun(run_id, name, action, live, self.host.log_dir, job_mark(name, self.host.instance))
        pid = command.spawn(loop, self.host.timers, tell)
        if pid is not None:
            timeout = self.host.timers.call_later(action.timeout_s, lambda: tell(_Timeout(run_id, kill=False)))
            live.cancel.append(timeout)
            self.log.info("cron_command_started", job=name, run=run_id, pid=pid)

    def _timeout(self, run_id: int, *, kill: bool) -> None:
        live = self.host.live.get(run_id)
        if live is None or live.identity is None:
            return
        leader = live.identity.process()
        if not kill:
            live.timed_out = True
            self.log.warning("cron_run_timed_out", job=live.job, run=run_id)
            kill_later = self.host.timers.call_later(KILL_AFTER_S, lambda: self._tell_cron(_Timeout(run_id, kill=True)))
            live.cancel.append(kill_later)
        if leader is not None and os_process.group_exists(live.identity.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(live.identity.pid, signal.SIGKILL if kill else signal.SIGTERM)

    def _run_ended(self, ended: RunEnded) -> None:
        live = self.host.live.pop(ended.run_id)
        status = ended.status
        if live is not None:
            for cancel in live.cancel:
                cancel()
            if live.timed_out:
                status = "timed_out"
        finish = cmd.FinishRun(ended.run_id, status, ended.detail, ended.exit_code)
        log = self.log

        def written(future: Future[Any]) -> None:
            error = future.exception()
            if error is not None:
                log.error("cron_run_not_recorded", run=ended.run_id, job=ended.job, error=describe(error))

        self._db(DB_WRITER, finish).add_done_callback(written)
        self.log.info("cron_run_ended", job=ended.job, run=ended.run_id, status=status, exit_code=ended.exit_code)
        self.host.publish("job.run", job=ended.job, run=ended.run_id, status=status, exit_code=ended.exit_code)
        job = self.jobs.get(ended.job)
        if job is not None and job.held and not job.claiming:
            job.held = False
            self._decide(job, self.host.clock())
            self._arm()

    def _run_now(self, name: str) -> int:
        if not self._loaded:
            msg = "the cron jobs are not read yet (the database is unavailable): retry once it is"
            raise JobsNotLoadedError(msg)
        job = self.jobs.get(name)
        if job is None:
            self._reload(name)
            job = self.jobs.get(name)
        if job is None:
            raise UnknownJobError(name)
        if len(self._running_since(name)) >= job.config.max_running:
            msg = f"job {name!r} has {job.config.max_running} run(s) running (max_running): wait for one to end"
            raise JobBusyError(msg)
        run_id = int(self._db_now(DB_WRITER, cmd.StartRun(name, self.host.instance)))
        started = self.host.clock()
        self.host.publish("job.run", job=name, run=run_id, status="running", scheduled_at=None)
        self._start(run_id, name, started, job)
        return run_id

    def _stop_runs(self) -> None:
        """At a stop: end the commands in progress and record every run in progress ``interrupted``."""
        live = self.host.live.snapshot()
        for run in live.values():
            for cancel in run.cancel:
                cancel()
            if run.identity is not None and os_process.group_exists(run.identity.pid):
                os_process.end_group(run.identity.pid, run.identity.create_time, signal.SIGTERM, KILL_AFTER_S)
        if live:
            with contextlib.suppress(Exception):
                self._db_now(DB_WRITER, cmd.InterruptRuns(tuple(live), "the daemon stopped during the run"))
            for run_id in live:
                self.host.live.pop(run_id)
            self.log.warning("cron_runs_interrupted", runs=sorted(live))

    # -- retention ---------------------------------------------------------------------------------------

    def _prune_later(self, delay_s: float) -> None:
        if self.host.keep_days <= 0:
            return
        ref = self.actor_ref

        def prune() -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_Prune())

        self._prune_timer = self.host.timers.call_later(delay_s, prune)

    def _prune(self) -> None:
        before = self.host.clock() - timedelta(days=self.host.keep_days)
        log = self.log
        ref = self.actor_ref

        def pruned(future: Future[Any]) -> None:
            error = future.exception()
            if error is not None:
                log.warning("cron_prune_failed", error=describe(error))
            elif future.result():
                log.info("cron_runs_pruned", removed=future.result())
                if future.result() >= PRUNE_MOST:
                    with contextlib.suppress(pykka.ActorDeadError):
                        ref.tell(_Prune())  # more are left: at once

        self._db(DB_WRITER, cmd.PruneRuns(before, PRUNE_MOST)).add_done_callback(pruned)
        self._prune_later(PRUNE_INTERVAL_S)

    # -- status -----------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        live = self.host.live.snapshot()
        return {
            "jobs": len(self.jobs),
            "claiming": sum(1 for job in self.jobs.values() if job.claiming),
            "running": len(live),
            "next_wake": None if self._wake_at is None else self._wake_at.isoformat(),
            "instance": self.host.instance,
            "loaded": self._loaded,
        }


def _same_file_job(row: Mapping[str, Any], table: dict[str, Any], config: JobConfig) -> bool:
    """Whether the stored ``row`` is the file job ``config`` (its ``table``) as it stands: nothing to store again."""
    return (
        row["source"] == "file"
        and row["config"] == table
        and row["owner_role"] == config.role
        and bool(row["paused"]) == config.paused
    )


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


__all__ = [
    "CRON",
    "Cron",
    "CronHost",
    "CronStatus",
    "JobActions",
    "JobBusyError",
    "JobsNotLoadedError",
    "LiveRun",
    "LiveRuns",
    "ReloadJob",
    "RunEnded",
    "RunNow",
    "UnknownJobError",
    "daemon_instance",
]
