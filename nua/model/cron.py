"""Cron jobs and their runs: the tables, and how their rows read in replies.

``cron_jobs``: one row per job, from the settings file (``source = "file"``, written
again at each daemon start) or added by RPC (``source = "database"``). ``config``
is the job's table as :func:`nua.job_settings.parse_job` reads it (checked before
it is written, and again when read back). ``next_fire_at`` is the next scheduled
fire, in UTC (``None``: paused); it only moves forward, in the same transaction
that records what became of the fires it passed (:class:`ClaimFires
<nua.model.commands.ClaimFires>`). ``version`` counts the changes of the
declaration: a claim names the version it was planned on, so a claim planned on
a declaration changed meanwhile is refused rather than applied.

``cron_runs``: one row per fire and per manual run: its scheduled time (``None``
for a manual run), start, end, status (``running``, ``ok``, ``failed``,
``missed``, ``skipped``, ``interrupted``, ``timed_out``), an excerpt of its result
or error, the exit code of a command, and which daemon claimed it. A fire is
recorded at most once: ``(job, scheduled_at)`` is unique.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    RowMapping,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from nua.model.base import UtcDateTime, iso, metadata

NAME_MAX = 64
CLAIMED_BY_MAX = 255
DETAIL_MAX = 4096
RUN_STATUSES = ("running", "ok", "failed", "missed", "skipped", "interrupted", "timed_out")
FILE = "file"
DATABASE = "database"

cron_jobs = Table(
    "cron_jobs",
    metadata,
    Column("name", String(NAME_MAX), primary_key=True),
    Column("config", JSON, nullable=False),
    Column("source", String(16), nullable=False),
    # The key that added the job (its runs call with this role), or "(settings file)".
    Column("owner", String(128), nullable=False),
    Column("owner_role", String(32), nullable=False),
    Column("paused", Boolean, nullable=False, default=False),
    Column("next_fire_at", UtcDateTime, nullable=True),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

cron_runs = Table(
    "cron_runs",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("job", String(NAME_MAX), nullable=False),
    Column("scheduled_at", UtcDateTime, nullable=True),
    Column("started_at", UtcDateTime, nullable=True),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("status", String(16), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("exit_code", Integer, nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("claimed_by", String(CLAIMED_BY_MAX), nullable=False, default=""),
    UniqueConstraint("job", "scheduled_at", name="uq_cron_runs_job_fire"),
    Index("ix_cron_runs_job_id", "job", "id"),
    Index("ix_cron_runs_status", "status"),
    sqlite_autoincrement=True,
)


def job_dict(row: RowMapping | dict[str, Any], last: RowMapping | dict[str, Any] | None = None) -> dict[str, Any]:
    """A job as replies carry it, with its last run's status and time when ``last`` is given."""
    return {
        "name": row["name"],
        "config": row["config"],
        "source": row["source"],
        "owner": row["owner"],
        "owner_role": row["owner_role"],
        "paused": bool(row["paused"]),
        "next_fire_at": iso(row["next_fire_at"]),
        "version": row["version"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "last_status": None if last is None else last["status"],
        "last_run_at": None if last is None else iso(last["started_at"] or last["scheduled_at"]),
    }


def run_dict(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A run as replies carry it."""
    return {
        "id": row["id"],
        "job": row["job"],
        "scheduled_at": iso(row["scheduled_at"]),
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
        "status": row["status"],
        "detail": row["detail"],
        "exit_code": row["exit_code"],
        "duration_s": row["duration_s"],
        "claimed_by": row["claimed_by"],
    }


def excerpt(text: str, most: int = DETAIL_MAX) -> str:
    """``text`` cut to its last ``most`` characters (the end of an output says most), marked when cut."""
    if len(text) <= most:
        return text
    return "…" + text[-(most - 1) :]


__all__ = [
    "DATABASE",
    "FILE",
    "RUN_STATUSES",
    "cron_jobs",
    "cron_runs",
    "excerpt",
    "job_dict",
    "run_dict",
]
