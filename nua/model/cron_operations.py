"""How the cron commands change or read ``cron_jobs`` and ``cron_runs``, inside the caller's transaction.

The one rule that matters most is :func:`claim_fires`: a fire is claimed (the job's
next fire advanced and the fire's run recorded) in one transaction, before its
action starts, and only if the job is still as the claimer saw it. That is what
makes a fire run at most once across a crash (the claim is durable before the
action starts: a restart finds the next fire moved on and the run ``running``,
which it marks ``interrupted``) and across several daemons sharing one database:
the update is conditional (``next_fire_at`` and ``version`` as expected), so of
two daemons claiming the same fire, the second updates no row and records
nothing. On PostgreSQL the row is first locked with ``FOR UPDATE SKIP LOCKED``,
so the second does not even wait for the first's transaction: it finds the row
locked and backs off. On SQLite the database has one writer at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from nua.model import commands as cmd
from nua.model.base import utcnow
from nua.model.cron import DATABASE, FILE, RUN_STATUSES, cron_jobs, cron_runs, excerpt, job_dict, run_dict
from nua.model.errors import ConflictError, InvalidError, NotFoundError

FILE_OWNER = "(settings file)"


def _page(items: list[dict[str, Any]], limit: int, cursor: str) -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next": items[-1][cursor] if more and items else None}


def _job_row(conn: Connection, name: str, *, lock: bool = False) -> Any:
    query = select(cron_jobs).where(cron_jobs.c.name == name)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return conn.execute(query).mappings().first()


def _last_runs(conn: Connection, names: Sequence[str]) -> dict[str, Any]:
    """Each job's newest run (by id), for the jobs ``names`` (a page: bounded)."""
    if not names:
        return {}
    newest = (
        select(func.max(cron_runs.c.id).label("id")).where(cron_runs.c.job.in_(names)).group_by(cron_runs.c.job)
    ).subquery()
    rows = conn.execute(select(cron_runs).join(newest, newest.c.id == cron_runs.c.id)).mappings()
    return {row["job"]: row for row in rows}


def put_job(conn: Connection, command: cmd.PutJob) -> dict[str, Any]:
    found = _job_row(conn, command.name)
    if command.create and found is not None:
        raise ConflictError("job", "name", command.name)
    if not command.create and found is None:
        raise NotFoundError("job", name=command.name)
    if found is not None and found["source"] == FILE:
        raise ConflictError("job", "name", command.name)
    now = utcnow()
    row = {
        "name": command.name,
        "config": command.config,
        "source": DATABASE,
        "owner": command.owner,
        "owner_role": command.owner_role,
        "paused": command.next_fire_at is None,
        "next_fire_at": command.next_fire_at,
        "updated_at": now,
    }
    if found is None:
        row |= {"version": 1, "created_at": now}
        conn.execute(insert(cron_jobs), row)
    else:
        row |= {"version": found["version"] + 1, "created_at": found["created_at"]}
        conn.execute(update(cron_jobs).where(cron_jobs.c.name == command.name).values(row))
    return job_dict(row)


def delete_job(conn: Connection, command: cmd.DeleteJob) -> int:
    found = _job_row(conn, command.name)
    if found is None:
        raise NotFoundError("job", name=command.name)
    if found["source"] == FILE:
        raise ConflictError("job", "name", command.name)
    conn.execute(delete(cron_runs).where(cron_runs.c.job == command.name))
    return int(conn.execute(delete(cron_jobs).where(cron_jobs.c.name == command.name)).rowcount)


def set_job_paused(conn: Connection, command: cmd.SetJobPaused) -> dict[str, Any]:
    found = _job_row(conn, command.name)
    if found is None:
        raise NotFoundError("job", name=command.name)
    changes = {
        "paused": command.paused,
        "next_fire_at": None if command.paused else command.next_fire_at,
        "version": found["version"] + 1,
        "updated_at": utcnow(),
    }
    conn.execute(update(cron_jobs).where(cron_jobs.c.name == command.name).values(changes))
    return job_dict({**found, **changes}, _last_runs(conn, [command.name]).get(command.name))


def sync_file_jobs(conn: Connection, command: cmd.SyncFileJobs) -> dict[str, list[str]]:
    stored = {row["name"]: row for row in conn.execute(select(cron_jobs)).mappings()}
    wanted = {job.name: job for job in command.jobs}
    now = utcnow()
    done: dict[str, list[str]] = {"kept": [], "changed": [], "added": [], "removed": []}
    for name, job in wanted.items():
        row = stored.get(name)
        values = {
            "config": job.config,
            "source": FILE,
            "owner": FILE_OWNER,
            "owner_role": job.owner_role,
            "paused": job.paused,
            "updated_at": now,
        }
        if row is None:
            conn.execute(
                insert(cron_jobs),
                {"name": name, **values, "next_fire_at": job.next_fire_at, "version": 1, "created_at": now},
            )
            done["added"].append(name)
        elif (row["source"], row["config"], row["owner_role"], bool(row["paused"])) == (
            FILE,
            job.config,
            job.owner_role,
            job.paused,
        ):
            done["kept"].append(name)
        else:
            values |= {"next_fire_at": job.next_fire_at, "version": row["version"] + 1}
            conn.execute(update(cron_jobs).where(cron_jobs.c.name == name).values(values))
            done["changed"].append(name)
    for name, row in stored.items():
        if row["source"] == FILE and name not in wanted:
            conn.execute(delete(cron_jobs).where(cron_jobs.c.name == name))
            done["removed"].append(name)
    return done


def claim_fires(conn: Connection, command: cmd.ClaimFires) -> dict[str, Any]:
    found = _job_row(conn, command.name, lock=True)
    if found is None:
        # Deleted, or (PostgreSQL) locked by another daemon claiming it now: its claim decides.
        return {"claimed": False, "runs": [], "job": None}
    if found["version"] != command.version or found["next_fire_at"] != command.expected_next:
        return {"claimed": False, "runs": [], "job": job_dict(found)}
    moved = conn.execute(
        update(cron_jobs)
        .where(
            cron_jobs.c.name == command.name,
            cron_jobs.c.version == command.version,
            cron_jobs.c.next_fire_at == command.expected_next,
        )
        .values(next_fire_at=command.new_next)
    ).rowcount
    if moved != 1:
        return {"claimed": False, "runs": [], "job": job_dict(found)}
    now = utcnow()
    running: list[int] = []
    recorded: list[tuple[Any, str, int | None]] = []
    # A fire recorded already (the job's next fire set back onto it by a change, or a clock behind
    # another daemon's) was decided once: it is not recorded, or run, again.
    when = [fire.scheduled_at for fire in command.fires]
    decided = set(
        conn.execute(
            select(cron_runs.c.scheduled_at).where(cron_runs.c.job == command.name, cron_runs.c.scheduled_at.in_(when))
        ).scalars()
    )
    for fire in command.fires:
        if fire.status not in ("running", "missed", "skipped"):
            raise InvalidError("status", f"a claimed fire is running, missed or skipped, not {fire.status!r}")
        if fire.scheduled_at in decided:
            continue
        started = fire.status == "running"
        row = {
            "job": command.name,
            "scheduled_at": fire.scheduled_at,
            "started_at": now if started else None,
            "ended_at": None if started else now,
            "status": fire.status,
            "detail": excerpt(fire.detail),
            "exit_code": None,
            "duration_s": None,
            "claimed_by": command.claimed_by,
        }
        key = conn.execute(insert(cron_runs), row).inserted_primary_key
        run_id = int(key[0]) if started and key is not None else None
        if run_id is not None:
            running.append(run_id)
        recorded.append((fire.scheduled_at, fire.status, run_id))
    return {"claimed": True, "runs": running, "recorded": recorded, "job": None}


def start_run(conn: Connection, command: cmd.StartRun) -> int:
    if _job_row(conn, command.name) is None:
        raise NotFoundError("job", name=command.name)
    row = {
        "job": command.name,
        "scheduled_at": None,
        "started_at": utcnow(),
        "status": "running",
        "detail": "run now",
        "claimed_by": command.claimed_by,
    }
    key = conn.execute(insert(cron_runs), row).inserted_primary_key
    if key is None:
        msg = "the database returned no id for the new run"
        raise RuntimeError(msg)
    return int(key[0])


def finish_run(conn: Connection, command: cmd.FinishRun) -> int:
    if command.status not in RUN_STATUSES or command.status == "running":
        raise InvalidError("status", f"a run ends as one of {', '.join(RUN_STATUSES[1:])}")
    found = conn.execute(select(cron_runs.c.started_at).where(cron_runs.c.id == command.id)).first()
    if found is None:
        return 0
    now = utcnow()
    started = found[0]
    duration = None if started is None else max((now - started).total_seconds(), 0.0)
    return int(
        conn.execute(
            update(cron_runs)
            .where(cron_runs.c.id == command.id, cron_runs.c.status == "running")
            .values(
                status=command.status,
                ended_at=now,
                detail=excerpt(command.detail),
                exit_code=command.exit_code,
                duration_s=duration,
            )
        ).rowcount
    )


def interrupt_runs(conn: Connection, command: cmd.InterruptRuns) -> int:
    if not command.ids:
        return 0
    return int(
        conn.execute(
            update(cron_runs)
            .where(cron_runs.c.id.in_(list(command.ids)), cron_runs.c.status == "running")
            .values(status="interrupted", ended_at=utcnow(), detail=excerpt(command.detail))
        ).rowcount
    )


def list_running(conn: Connection, _command: cmd.ListRunning) -> list[dict[str, Any]]:
    rows = conn.execute(select(cron_runs).where(cron_runs.c.status == "running").order_by(cron_runs.c.id))
    return [run_dict(row) for row in rows.mappings()]


def list_jobs(conn: Connection, command: cmd.ListJobs) -> dict[str, Any]:
    query = select(cron_jobs).order_by(cron_jobs.c.name).limit(command.limit + 1)
    if command.after is not None:
        query = query.where(cron_jobs.c.name > command.after)
    rows = conn.execute(query).mappings().all()
    last = _last_runs(conn, [row["name"] for row in rows[: command.limit]])
    return _page([job_dict(row, last.get(row["name"])) for row in rows], command.limit, "name")


def get_job(conn: Connection, command: cmd.GetJob) -> dict[str, Any]:
    found = _job_row(conn, command.name)
    if found is None:
        raise NotFoundError("job", name=command.name)
    return job_dict(found, _last_runs(conn, [command.name]).get(command.name))


def list_runs(conn: Connection, command: cmd.ListRuns) -> dict[str, Any]:
    query = select(cron_runs).where(cron_runs.c.job == command.job).order_by(cron_runs.c.id.desc())
    if command.after is not None:
        query = query.where(cron_runs.c.id < command.after)
    rows = conn.execute(query.limit(command.limit + 1)).mappings().all()
    return _page([run_dict(row) for row in rows], command.limit, "id")


def prune_runs(conn: Connection, command: cmd.PruneRuns) -> int:
    ended = cron_runs.c.status != "running"
    when = func.coalesce(cron_runs.c.started_at, cron_runs.c.scheduled_at, cron_runs.c.ended_at)
    oldest = select(cron_runs.c.id).where(ended, when < command.before).order_by(cron_runs.c.id)
    doomed = [row[0] for row in conn.execute(oldest.limit(command.most))]
    removed = 0
    for start in range(0, len(doomed), 500):
        removed += conn.execute(delete(cron_runs).where(cron_runs.c.id.in_(doomed[start : start + 500]))).rowcount
    return removed


HANDLERS: dict[type[Any], Callable[[Connection, Any], Any]] = {
    cmd.PutJob: put_job,
    cmd.DeleteJob: delete_job,
    cmd.SetJobPaused: set_job_paused,
    cmd.SyncFileJobs: sync_file_jobs,
    cmd.ClaimFires: claim_fires,
    cmd.StartRun: start_run,
    cmd.FinishRun: finish_run,
    cmd.InterruptRuns: interrupt_runs,
    cmd.ListRunning: list_running,
    cmd.ListJobs: list_jobs,
    cmd.GetJob: get_job,
    cmd.ListRuns: list_runs,
    cmd.PruneRuns: prune_runs,
}

__all__ = ["FILE_OWNER", "HANDLERS"]
