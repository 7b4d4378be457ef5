"""The cron commands on every backend: claims are conditional and atomic, runs end once, history pages."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pykka
import pytest
from dbkit import Writers

from nua.actors.call import call
from nua.model import commands as cmd
from nua.model.errors import ConflictError, NotFoundError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WAIT_S = 10.0
TABLE = {"schedule": "every 2s", "zone": "UTC", "call": "user_count", "params": []}


def ask(writer: pykka.ActorRef[Any], command: Any) -> Any:
    return call(writer, command).result(WAIT_S)


def add_job(writer: pykka.ActorRef[Any], name: str = "a", first: datetime = T0) -> dict[str, Any]:
    return dict(ask(writer, cmd.PutJob(name, TABLE, "alice", "operator", first, create=True)))


def file_job(name: str, first: datetime) -> cmd.FileJob:
    return cmd.FileJob(name, TABLE, "admin", paused=False, next_fire_at=first)


def claim(name: str, version: int, expected: datetime, *fires: tuple[datetime, str], by: str = "d1") -> cmd.ClaimFires:
    records = tuple(cmd.FireRecord(when, status) for when, status in fires)
    return cmd.ClaimFires(name, version, expected, expected + timedelta(seconds=2 * len(fires)), records, by)


def test_a_claim_advances_the_next_fire_and_records_the_fires_together(writer: pykka.ActorRef[Any]) -> None:
    add_job(writer)
    done = ask(writer, claim("a", 1, T0, (T0, "missed"), (T0 + timedelta(seconds=2), "running")))
    assert done["claimed"] is True
    assert len(done["runs"]) == 1
    job = ask(writer, cmd.GetJob("a"))
    assert job["next_fire_at"] == (T0 + timedelta(seconds=4)).isoformat(timespec="microseconds")
    runs = ask(writer, cmd.ListRuns("a"))["items"]
    assert [(r["status"], r["id"] == done["runs"][0]) for r in runs] == [("running", True), ("missed", False)]
    assert job["last_status"] == "running"


def test_a_claim_planned_on_a_stale_next_fire_or_version_changes_nothing(writer: pykka.ActorRef[Any]) -> None:
    add_job(writer)
    assert ask(writer, claim("a", 1, T0, (T0, "running")))["claimed"] is True
    again = ask(writer, claim("a", 1, T0, (T0, "running"), by="d2"))
    assert again["claimed"] is False
    assert again["job"]["next_fire_at"] == (T0 + timedelta(seconds=2)).isoformat(timespec="microseconds")
    stale_version = ask(writer, claim("a", 7, T0 + timedelta(seconds=2), (T0 + timedelta(seconds=2), "running")))
    assert stale_version["claimed"] is False
    assert [r["claimed_by"] for r in ask(writer, cmd.ListRuns("a"))["items"]] == ["d1"]


def test_a_run_ends_once_and_an_interrupted_run_stays_interrupted(writer: pykka.ActorRef[Any]) -> None:
    add_job(writer)
    (run_id,) = ask(writer, claim("a", 1, T0, (T0, "running")))["runs"]
    assert ask(writer, cmd.InterruptRuns((run_id,), "the daemon ended")) == 1
    assert ask(writer, cmd.FinishRun(run_id, "ok", "late")) == 0
    (run,) = ask(writer, cmd.ListRuns("a"))["items"]
    assert (run["status"], run["detail"]) == ("interrupted", "the daemon ended")
    assert ask(writer, cmd.ListRunning()) == []


def test_file_jobs_keep_their_next_fire_while_unchanged_and_shadow_a_stored_job(writer: pykka.ActorRef[Any]) -> None:
    add_job(writer, "b")
    later = T0 + timedelta(hours=1)
    first = cmd.SyncFileJobs((file_job("a", T0), file_job("b", T0)))
    assert ask(writer, first) == {"kept": [], "changed": ["b"], "added": ["a"], "removed": []}
    same = cmd.SyncFileJobs((file_job("a", later),))
    assert ask(writer, same) == {"kept": ["a"], "changed": [], "added": [], "removed": ["b"]}
    assert ask(writer, cmd.GetJob("a"))["next_fire_at"] == T0.isoformat(timespec="microseconds")
    with pytest.raises(ConflictError):
        ask(writer, cmd.DeleteJob("a"))
    with pytest.raises(ConflictError):
        ask(writer, cmd.PutJob("a", TABLE, "alice", "operator", T0, create=False))


def test_pausing_bumps_the_version_so_an_earlier_claim_is_refused(writer: pykka.ActorRef[Any]) -> None:
    add_job(writer)
    paused = ask(writer, cmd.SetJobPaused("a", paused=True, next_fire_at=None))
    assert (paused["paused"], paused["next_fire_at"], paused["version"]) == (True, None, 2)
    assert ask(writer, claim("a", 1, T0, (T0, "running")))["claimed"] is False
    with pytest.raises(NotFoundError):
        ask(writer, cmd.SetJobPaused("nope", paused=True, next_fire_at=None))


def test_history_pages_newest_first_and_prune_keeps_running_runs(writer: pykka.ActorRef[Any]) -> None:
    add_job(writer)
    fires = [(T0 + timedelta(seconds=2 * i), "missed") for i in range(5)]
    ask(writer, claim("a", 1, T0, *fires))
    manual = ask(writer, cmd.StartRun("a", "d1"))
    first = ask(writer, cmd.ListRuns("a", limit=4))
    assert first["items"][0]["id"] == manual
    rest = ask(writer, cmd.ListRuns("a", limit=4, after=first["next"]))
    assert len(first["items"]) + len(rest["items"]) == 6
    assert rest["next"] is None
    assert ask(writer, cmd.PruneRuns(datetime.now(UTC) + timedelta(days=1), 100)) == 5
    assert [r["id"] for r in ask(writer, cmd.ListRuns("a"))["items"]] == [manual]


def test_two_writers_claiming_the_same_fire_record_it_once(writers: Writers, writer: pykka.ActorRef[Any]) -> None:
    """Two daemons on one database: whichever claims first wins, the other records nothing (any backend)."""
    add_job(writer)  # the first writer has made the schema the second one opens
    other = writers.start()
    go = threading.Barrier(2)
    results: list[Any] = []

    def race(ref: pykka.ActorRef[Any], name: str) -> None:
        go.wait()
        results.append(ask(ref, claim("a", 1, T0, (T0, "running"), by=name)))

    threads = [threading.Thread(target=race, args=(ref, n)) for ref, n in ((writer, "d1"), (other, "d2"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert sorted(r["claimed"] for r in results) == [False, True]
    assert len(ask(writer, cmd.ListRuns("a"))["items"]) == 1


def test_a_fire_recorded_already_is_neither_recorded_nor_run_again(writer: pykka.ActorRef[Any]) -> None:
    add_job(writer)
    (first,) = ask(writer, claim("a", 1, T0, (T0, "running")))["runs"]
    # A change sets the next fire back onto T0 (or another daemon's clock is behind): T0 was decided once.
    ask(writer, cmd.SetJobPaused("a", paused=False, next_fire_at=T0))
    again = ask(writer, claim("a", 2, T0, (T0, "running"), (T0 + timedelta(seconds=2), "running")))
    assert again["claimed"] is True
    assert [(when, status) for when, status, _ in again["recorded"]] == [(T0 + timedelta(seconds=2), "running")]
    runs = ask(writer, cmd.ListRuns("a"))["items"]
    assert [r["id"] for r in runs if r["scheduled_at"] == T0.isoformat(timespec="microseconds")] == [first]
    assert len(runs) == 2
