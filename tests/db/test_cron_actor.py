"""The cron actor's rules, each on a manual clock: DST, no drift, restarts, downtime, crashes, two daemons."""

from __future__ import annotations

import os
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import structlog
from cronkit import T0, job, rig

from nua.actors.cron import CRON, JobsNotLoadedError, ReloadJob, RunNow
from nua.actors.directory import DB_READER, DB_WRITER
from nua.actors.timers import ManualTimers
from nua.model import commands as cmd
from nua.settings import Settings

PARIS = ZoneInfo("Europe/Paris")


def scheduled(runs: list[dict[str, object]], status: str | None = None) -> list[str]:
    return [str(r["scheduled_at"]) for r in runs if status in (None, r["status"])]


def test_a_daily_0230_paris_job_runs_exactly_once_on_both_change_days(settings: Settings, tmp_path: Path) -> None:
    timers = ManualTimers()
    for name, start, days in (
        ("spring", datetime(2026, 3, 27, 12, tzinfo=PARIS), 4),
        ("autumn", datetime(2026, 10, 23, 12, tzinfo=PARIS), 4),
    ):
        with rig(settings, tmp_path, timers) as cron:
            cron.advance_to(start.astimezone(UTC))
            cron.start(job(name, schedule="30 2 * * *", zone="Europe/Paris", call="user_count"))
            for _ in range(days * 24):
                cron.advance(3600)
            runs = cron.runs(name)
        local = [datetime.fromisoformat(str(r["scheduled_at"])).astimezone(PARIS).isoformat() for r in runs]
        assert all(r["status"] == "ok" for r in runs), runs
        assert len(runs) == days
        if start.month == 3:
            assert local == [
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
                "2026-03-31T02:30:00+02:00",
            ]
        else:
            assert local == [
                "2026-10-24T02:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00",
                "2026-10-27T02:30:00+01:00",
            ]


def test_late_wake_ups_do_not_drift_and_a_restart_keeps_the_next_fire(settings: Settings, tmp_path: Path) -> None:
    with rig(settings, tmp_path) as cron:
        cron.start(job("tick", schedule="*/5 * * * *", call="user_count"))
        for _ in range(4):
            cron.advance(5 * 60 + 7)  # each wake-up 7 s late, and later each time
        fires = scheduled(cron.runs("tick"))
        assert fires == [(T0 + timedelta(minutes=5 * i)).isoformat(timespec="microseconds") for i in range(1, 5)]
        before = cron.db(cmd.GetJob("tick"))["next_fire_at"]
        cron.stop()
        cron.start(job("tick", schedule="*/5 * * * *", call="user_count"))
        assert cron.db(cmd.GetJob("tick"))["next_fire_at"] == before
        cron.advance(60)
        assert len(cron.runs("tick")) == 4  # nothing more ran because of the restart
        cron.advance_to(datetime.fromisoformat(before))
        assert scheduled(cron.runs("tick"))[-1] == before


def test_after_downtime_a_coalescing_job_runs_once_and_records_the_rest_missed(
    settings: Settings, tmp_path: Path
) -> None:
    minutely = job("sync", schedule="* * * * *", call="user_count")
    with rig(settings, tmp_path) as cron:
        cron.start(minutely)
        cron.advance(60)
        cron.stop()
        cron.timers.advance(10 * 60 + 30)  # the daemon is down for ten minutes
        cron.start(minutely)
        cron.settle()
        runs = cron.runs("sync")
    assert [r["status"] for r in runs] == ["ok"] + ["missed"] * 9 + ["ok"]
    assert runs[-1]["scheduled_at"] == (T0 + timedelta(minutes=11)).isoformat(timespec="microseconds")
    assert len(cron.actions.calls) == 2


def test_after_downtime_a_non_coalescing_job_runs_each_fire_within_its_grace(
    settings: Settings, tmp_path: Path
) -> None:
    minutely = job("report", schedule="* * * * *", call="user_count", coalesce=False, misfire_grace_s=150)
    with rig(settings, tmp_path) as cron:
        cron.start(minutely)
        cron.advance(60)
        cron.stop()
        cron.timers.advance(10 * 60 + 30)
        cron.start(minutely)
        cron.settle()
        runs = cron.runs("report")
    # Down from 12:01 to 12:11:30: 12:09 (150 s late) and later run, one after the other; 12:02..12:08 are missed.
    assert [(r["scheduled_at"][11:16], r["status"]) for r in runs] == [
        ("12:01", "ok"),
        *[(f"12:0{m}", "missed") for m in range(2, 9)],
        ("12:09", "ok"),
        ("12:10", "ok"),
        ("12:11", "ok"),
    ]


def test_a_fire_while_the_previous_run_still_runs_is_skipped(settings: Settings, tmp_path: Path) -> None:
    with rig(settings, tmp_path) as cron:
        cron.actions.hold = True
        cron.start(job("slow", schedule="* * * * *", call="user_count"))
        cron.advance(60)
        cron.advance(60)
        cron.advance(60)
        cron.actions.release()
        cron.journal.wait("ok", job="slow")
        cron.settle()
        statuses = [r["status"] for r in cron.runs("slow")]
    assert statuses == ["ok", "skipped", "skipped"]
    assert len(cron.actions.calls) == 1


def test_a_run_left_running_by_a_killed_daemon_is_interrupted_and_not_run_again(
    settings: Settings, tmp_path: Path
) -> None:
    minutely = job("backup", schedule="* * * * *", call="user_count")
    with rig(settings, tmp_path) as cron:
        cron.start(minutely)
        cron.stop()
        # What a daemon killed with -9 mid-run leaves: its claim (next fire moved on, the run "running").
        dead = f"{socket.gethostname()}/{2**22 + 7}/1/x/1"
        fire = T0 + timedelta(minutes=1)
        claim = cmd.ClaimFires("backup", 1, fire, fire + timedelta(minutes=1), (cmd.FireRecord(fire, "running"),), dead)
        assert cron.db(claim)["claimed"] is True
        cron.timers.advance(70)
        cron.start(minutely)
        cron.settle()
        runs = cron.runs("backup")
        assert [(r["scheduled_at"], r["status"]) for r in runs] == [
            (fire.isoformat(timespec="microseconds"), "interrupted")
        ]
        assert cron.actions.calls == []
        assert cron.journal.count("interrupted") == 1
        cron.advance(60)
        assert [r["status"] for r in cron.runs("backup")] == ["interrupted", "ok"]


def test_a_crashed_cron_actor_neither_loses_nor_repeats_a_fire(settings: Settings, tmp_path: Path) -> None:
    minutely = job("beat", schedule="* * * * *", call="user_count")
    with rig(settings, tmp_path) as cron:
        cron.actions.hold = True
        first = cron.start(minutely)
        cron.advance(60)
        assert cron.status()["running"] == 1
        from nua.actors.messages import Crash  # noqa: PLC0415

        cron.directory.unregister("cron", first)
        first.tell(Crash())
        cron.exits.wait()
        cron.start(minutely)  # the supervisor's restart: the run in progress is kept
        cron.actions.release()
        cron.journal.wait("ok", job="beat")
        cron.actions.hold = False
        cron.advance(60)
        runs = cron.runs("beat")
    assert [(r["scheduled_at"][11:16], r["status"]) for r in runs] == [("12:01", "ok"), ("12:02", "ok")]


def test_two_daemons_on_one_database_never_both_run_a_fire(settings: Settings, tmp_path: Path) -> None:
    timers = ManualTimers()
    every = job("once", schedule="every 10s", call="user_count")
    with rig(settings, tmp_path, timers, "d1") as one, rig(settings, tmp_path, timers, "d2") as two:
        one.start(every)
        two.start(every)
        for _ in range(30):
            ran = timers.advance(10)
            while ran:  # a daemon that lost a claim reads the job again and looks at once (a timer of 0 s)
                one.settle()
                two.settle()
                ran = timers.advance(0)
        runs = one.runs("once")
        calls = len(one.actions.calls) + len(two.actions.calls)
    fires = scheduled(runs)
    assert len(fires) == len(set(fires)) == 30, [(r["scheduled_at"], r["status"], r["claimed_by"]) for r in runs]
    assert calls == 30
    assert {str(r["claimed_by"]) for r in runs} <= {"test/d1", "test/d2"}
    assert all(r["status"] == "ok" for r in runs)


def test_a_job_added_paused_and_run_now_through_the_database(settings: Settings, tmp_path: Path) -> None:
    with rig(settings, tmp_path) as cron:
        cron.start()
        table = job("later", schedule="0 0 1 1 *", call="user_count").as_table()
        cron.db(cmd.PutJob("later", table, "alice", "operator", T0 + timedelta(days=300), create=True))
        assert cron.cron is not None
        cron.cron.ask(ReloadJob("later"), timeout=10)
        run_id = cron.cron.ask(RunNow("later"), timeout=10)
        cron.settle()
        (run,) = cron.runs("later")
        assert (run["id"], run["scheduled_at"], run["status"]) == (run_id, None, "ok")
        assert cron.actions.calls[0][1:] == ("alice", "operator")


def test_a_command_job_keeps_its_exit_code_and_the_end_of_its_output(settings: Settings, tmp_path: Path) -> None:
    user = {"user": "root"} if os.geteuid() == 0 else {}
    script = "import sys; print('x' * 5000); print('done'); sys.exit(3)"
    with rig(settings, tmp_path) as cron:
        cron.start(job("script", schedule="* * * * *", command=[sys.executable, "-c", script], **user))
        cron.advance(60)
        cron.journal.wait("failed", job="script")
        cron.settle()
        (run,) = cron.runs("script")
    assert run["exit_code"] == 3
    assert str(run["detail"]).endswith("done\n")
    assert len(str(run["detail"])) <= 4096
    assert (tmp_path / "jobs-d1" / "script.log").read_text().endswith("done\n")


def test_a_command_past_its_timeout_is_ended_and_recorded_timed_out(settings: Settings, tmp_path: Path) -> None:
    user = {"user": "root"} if os.geteuid() == 0 else {}
    with rig(settings, tmp_path) as cron:
        cron.start(job("hang", schedule="* * * * *", command=["sleep", "600"], timeout_s=30, **user))
        cron.advance(60)
        assert cron.status()["running"] == 1
        cron.timers.advance(30)
        cron.journal.wait("timed_out", job="hang")
        cron.settle()
        (run,) = cron.runs("hang")
    assert run["status"] == "timed_out"
    assert run["exit_code"] == -15


def test_a_job_that_cannot_be_read_again_is_read_later_without_a_crash(settings: Settings, tmp_path: Path) -> None:
    with rig(settings, tmp_path) as cron:
        cron.start()
        table = job("late", schedule="* * * * *", call="user_count").as_table()
        cron.db(cmd.PutJob("late", table, "alice", "operator", T0 + timedelta(minutes=1), create=True))
        cron.directory.unregister("db_reader", cron.reader)  # the reader is restarting
        assert cron.cron is not None
        assert cron.cron.ask(ReloadJob("late"), timeout=10) is None
        assert cron.status()["jobs"] == 0
        cron.directory.register("db_reader", cron.reader)
        cron.advance(1)  # the retry
        assert cron.status()["jobs"] == 1
        cron.advance(60)
        assert [r["status"] for r in cron.runs("late")] == ["ok"]


def test_a_cron_started_during_an_outage_runs_reports_it_and_loads_later_with_backoff(
    settings: Settings, tmp_path: Path
) -> None:
    with rig(settings, tmp_path) as cron:
        table = job("late", schedule="* * * * *", call="user_count").as_table()
        cron.db(cmd.PutJob("late", table, "alice", "operator", T0 + timedelta(minutes=1), create=True))
        for name, ref in ((DB_READER, cron.reader), (DB_WRITER, cron.writer)):
            cron.directory.unregister(name, ref)  # the database is unavailable
        cron.start(job("filed", schedule="@daily", call="user_count"))  # no failure: it starts holding nothing
        assert (cron.status()["loaded"], cron.status()["jobs"]) == (False, 0)
        (condition,) = cron.host.health.conditions()
        assert condition.component == CRON
        assert "cannot be read" in condition.reason
        assert cron.cron is not None
        with pytest.raises(JobsNotLoadedError):
            cron.cron.ask(RunNow("late"), timeout=10)
        cron.advance(1)  # the first retry, 1 s later, fails too: the next one is 2 s later
        assert cron.status()["loaded"] is False
        cron.directory.register(DB_READER, cron.reader)
        cron.directory.register(DB_WRITER, cron.writer)
        cron.advance(1.5)
        assert cron.status()["loaded"] is False
        cron.advance(0.5)
        assert (cron.status()["loaded"], cron.status()["jobs"]) == (True, 2)
        assert cron.host.health.conditions() == []
        cron.advance(60)
        assert [r["status"] for r in cron.runs("late")] == ["ok"]


def test_failed_claims_are_logged_once_per_outage_and_retried_later_each_time(
    settings: Settings, tmp_path: Path
) -> None:
    with structlog.testing.capture_logs() as logs, rig(settings, tmp_path) as cron:
        cron.start(job("tick", schedule="* * * * *", call="user_count"))
        cron.directory.unregister(DB_WRITER, cron.writer)  # the writer is away: claims fail
        cron.advance(60)  # fails, tried again 1 s later
        cron.advance(1)  # fails again: tried again 2 s later
        cron.directory.register(DB_WRITER, cron.writer)
        cron.advance(1)
        assert cron.runs("tick") == []
        cron.advance(1)
        assert [r["status"] for r in cron.runs("tick")] == ["ok"]
    events = [entry["event"] for entry in logs]
    assert events.count("cron_claim_failed") == 1
    assert events.count("cron_claims_recovered") == 1
