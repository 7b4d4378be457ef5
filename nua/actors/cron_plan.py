"""What becomes of a job's due fires at a given instant: the rules of the cron actor, as a pure function.

:func:`plan` takes a job, its stored next fire, "now" and the start times of its
runs still running, and says which due fires start now, which are ``missed`` and
which ``skipped``, and the job's next fire afterwards. Nothing here reads a
clock: the actor passes its (injectable) clock's reading, and the tests pass
whatever instants they need.

The rules:

- the fires due are the stored next fire and each one after it (each computed
  from the one before, :meth:`nua.schedule.Schedule.next_after`) up to "now"; a
  fire is due at its scheduled time plus the job's jitter (a fixed fraction of
  ``jitter_s`` for each fire, from a hash of the job's name and the fire: the same
  after a restart, and never a drift);
- ``coalesce``: the latest due fire runs, the ones before it are ``missed``;
  otherwise each due fire later than ``misfire_grace_s`` is ``missed`` and the
  others run, oldest first;
- a fire to run starts if fewer than ``max_running`` runs of the job are running;
  else it is ``skipped`` when it came while a run was running (its time is after
  that run's start), and otherwise (a backlog older than the runs) it waits for a
  run to end, and is looked at again then, within its grace or ``missed``;
- the next fire afterwards is the first fire after the last one decided: always
  strictly later than "now" once every due fire is decided.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from nua.job_settings import JobConfig
from nua.model.commands import FireRecord
from nua.schedule import ScheduleError

# The most fires decided in one look (a per-second job after a day away has 86,400):
# the rest are decided by the next look, at once.
MAX_DUE = 1000


@dataclass(frozen=True)
class Plan:
    """What the actor claims for one job: its fires' fates and its next fire."""

    fires: tuple[FireRecord, ...]
    new_next: datetime | None
    # A due fire waits for a running run to end (then the job is looked at again).
    held: bool = False
    # More fires were due than one look decides: look again at once.
    more: bool = False

    @property
    def starting(self) -> int:
        return sum(1 for fire in self.fires if fire.status == "running")


def jitter(config: JobConfig, fire: datetime) -> timedelta:
    """The delay of ``fire`` within ``jitter_s``: the same for the same job and fire, whoever computes it."""
    if config.jitter_s <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{config.name}\0{fire.isoformat()}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=round(fraction * config.jitter_s, 3))


def due_at(config: JobConfig, fire: datetime) -> datetime:
    """When ``fire`` is to start: its scheduled time plus its jitter."""
    return fire + jitter(config, fire)


def next_fire(config: JobConfig, after: datetime) -> datetime | None:
    """The job's first fire strictly after ``after`` (``None``: its expression never fires again)."""
    try:
        return config.schedule.next_after(after)
    except ScheduleError:
        return None


def plan(
    config: JobConfig, stored_next: datetime | None, now: datetime, running_since: Sequence[datetime]
) -> Plan | None:
    """The fates of the job's fires due at ``now`` (``None`` when none is due); see the module's doc."""
    if stored_next is None or due_at(config, stored_next) > now:
        return None
    due: list[datetime] = []
    following: datetime | None = stored_next
    while following is not None and due_at(config, following) <= now and len(due) < MAX_DUE:
        due.append(following)
        following = next_fire(config, following)
    more = following is not None and due_at(config, following) <= now
    grace = timedelta(seconds=config.misfire_grace_s)
    records: list[FireRecord] = []
    running = len(running_since)
    for index, fire in enumerate(due):
        latest = index == len(due) - 1 and not more
        late = now - due_at(config, fire)
        if config.coalesce and not latest:
            records.append(FireRecord(fire, "missed", "coalesced: a later fire ran instead"))
            continue
        if not config.coalesce and late > grace:
            records.append(FireRecord(fire, "missed", f"{late.total_seconds():.3f} s late, past misfire_grace_s"))
            continue
        if running < config.max_running:
            records.append(FireRecord(fire, "running"))
            running += 1
            continue
        if any(fire > since for since in running_since):
            records.append(FireRecord(fire, "skipped", f"max_running ({config.max_running}) runs were running"))
            continue
        return Plan(tuple(records), fire, held=True)
    return Plan(tuple(records), following, more=more)


__all__ = ["MAX_DUE", "Plan", "due_at", "jitter", "next_fire", "plan"]
