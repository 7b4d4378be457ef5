"""Outside outages degrade the DB writer, never end it: errors classified by code, refused at once, recovered.

Actor-level: the writer is driven directly, with a clock the test moves and the
``CheckDatabase`` look told by the test instead of its ticker (except where the
ticker itself is tested). Errors come from real conditions where one can be made
here (another process holding the lock, the file deleted or replaced) and from a
test double of the connection's commit otherwise.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dbkit import Gate, Writers, make_settings
from outagekit import FakeClock, WatchedHealth, backup, refused, retry_now, start_writer
from sqlalchemy import event

from nua.actors import db_writer
from nua.actors.call import call
from nua.actors.db_writer import CheckDatabase, DbWriter
from nua.actors.health import Health
from nua.actors.messages import Ping
from nua.model import commands as cmd
from nua.model import engine as db_engine
from nua.model.errors import InternalError
from nua.model.outage import Outage, OutageError, classify
from nua.settings import Settings


def sqlite_error(code: int, name: str, message: str = "driver text") -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    error.sqlite_errorname = name  # type: ignore[attr-defined]
    return error


def stored(settings: Settings, key: str) -> Any:
    """The value of setting ``key`` read by a fresh connection, or None when the row is absent."""
    engine = sa.create_engine(settings.db.url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT value FROM settings WHERE key = :k"), {"k": key}).first()
    finally:
        engine.dispose()
    return None if row is None else row[0]


# -- classification ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name", "phrase", "reconnect"),
    [
        (13, "SQLITE_FULL", "the disk holding the database is full", False),
        (8, "SQLITE_READONLY", "the database file or its file system is read-only", False),
        (266, "SQLITE_IOERR_READ", "an I/O error on the database file", True),
        (5, "SQLITE_BUSY", "the database is locked by another process past the busy timeout", False),
        (1032, "SQLITE_READONLY_DBMOVED", "the database file was moved or deleted", True),
    ],
)
def test_sqlite_environment_codes_are_outages(code: int, name: str, phrase: str, reconnect: bool) -> None:
    assert classify(sqlite_error(code, name)) == Outage(f"{phrase} ({name})", reconnect=reconnect)


@pytest.mark.parametrize(
    "error",
    [
        # The message says "disk is full", the code says a plain SQL error: the code wins.
        sqlite_error(1, "SQLITE_ERROR", "database or disk is full"),
        sqlite3.OperationalError("no code at all"),
        RuntimeError("database or disk is full"),
    ],
)
def test_other_errors_are_bugs_whatever_their_message(error: BaseException) -> None:
    assert classify(error) is None


def test_nuas_own_checks_carry_their_outage() -> None:
    found = Outage("the file went away", reconnect=True)
    assert classify(OutageError(found)) is found


def test_sqlalchemy_wrappers_are_classified_by_their_driver_error_and_invalidation() -> None:
    wrapped = sa.exc.OperationalError("INSERT ... secret params", {"password": "x"}, sqlite_error(13, "SQLITE_FULL"))
    assert classify(wrapped) == Outage("the disk holding the database is full (SQLITE_FULL)")
    assert "secret" not in classify(wrapped).reason  # type: ignore[union-attr]
    lost = sa.exc.DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True)
    assert classify(lost) == Outage("the connection to the database was lost", reconnect=True)
    assert classify(sa.exc.IntegrityError("INSERT", None, sqlite_error(19, "SQLITE_CONSTRAINT"))) is None


def test_psycopg_errors_are_classified_by_class_and_sqlstate() -> None:
    errors = pytest.importorskip("psycopg.errors", reason="psycopg is not installed (pip install '.[pg]')")
    psycopg = pytest.importorskip("psycopg")
    assert classify(errors.AdminShutdown("terminating connection due to administrator command")) == Outage(
        "the database server ended the connection (administrator command) (SQLSTATE 57P01)", reconnect=True
    )
    assert classify(errors.TooManyConnections("sorry")).reconnect is True  # type: ignore[union-attr]
    assert "disk is full" in classify(errors.DiskFull("x")).reason  # type: ignore[union-attr]
    assert classify(psycopg.OperationalError("server closed the connection unexpectedly")) == Outage(
        "the connection to the database server was lost or refused", reconnect=True
    )
    assert classify(errors.UniqueViolation("duplicate key")) is None
    assert classify(errors.UndefinedTable("no such table")) is None


# -- a failed commit (test double) -------------------------------------------------------


class OutageAtCommitWriter(DbWriter):
    """A DbWriter whose next commit fails with the driver error a full disk (SQLite) or a killed server gives."""

    def setup(self) -> None:
        super().setup()
        assert self._conn is not None
        if self._conn.dialect.name == "sqlite":
            error: BaseException = sqlite_error(13, "SQLITE_FULL")
        else:
            import psycopg.errors  # noqa: PLC0415 - only with PostgreSQL

            error = psycopg.errors.AdminShutdown("terminating connection due to administrator command")

        def refuse(_conn: sa.Connection) -> None:
            raise error

        event.listen(self._conn, "commit", refuse, once=True)


def test_an_outage_at_commit_fails_the_batch_as_unavailable_and_the_writer_lives_on(
    writers: Writers, settings: Settings
) -> None:
    health, clock = Health(), FakeClock()
    writer = start_writer(writers, health=health, clock=clock, actor=OutageAtCommitWriter)

    error = refused(lambda: writer.ask(cmd.SetSetting("lost", 1), timeout=10))
    assert error.message.startswith("database unavailable: ")
    assert error.kind == "unavailable"
    assert error.data["reason"] in error.message
    assert writer.ask(Ping(), timeout=10) is True
    assert [c.component for c in health.conditions()] == ["db_writer"]
    assert health.conditions()[0].reason == error.data["reason"]
    # Until the retry is due, writes are refused at once, without touching the database.
    refused(lambda: writer.ask(cmd.SetSetting("refused", 2), timeout=10))

    retry_now(writer, clock)
    assert health.conditions() == []
    assert writer.ask(cmd.SetSetting("after", 3), timeout=10)["value"] == 3
    assert (stored(settings, "lost"), stored(settings, "refused")) == (None, None)
    assert stored(settings, "after") is not None
    assert writers.exits[-1].exits == []  # never exited, so never restarted


class FlakyDisk:
    """Makes every commit of a FlakyCommitWriter fail with SQLITE_FULL while ``full``; counts the commits tried."""

    def __init__(self) -> None:
        self.full = False
        self.commits = 0

    def __call__(self, _conn: sa.Connection) -> None:
        self.commits += 1
        if self.full:
            raise sqlite_error(13, "SQLITE_FULL")


class FlakyCommitWriter(DbWriter):
    disk = FlakyDisk()

    def setup(self) -> None:
        super().setup()
        event.listen(self._conn, "commit", self.disk)


def test_retries_back_off_exponentially_up_to_the_cap_and_do_not_flap(
    writers: Writers, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FlakyDisk()
    monkeypatch.setattr(FlakyCommitWriter, "disk", disk)
    health, clock = Health(), FakeClock()
    writer = start_writer(writers, health=health, clock=clock, actor=FlakyCommitWriter)
    cap = writers.settings.db.reconnect_max_s
    assert cap == 5.0

    def probes_after(seconds: float) -> int:
        before = disk.commits
        clock.advance(seconds)
        writer.ask(CheckDatabase(), timeout=10)
        return disk.commits - before

    disk.full = True
    refused(lambda: writer.ask(cmd.SetSetting("a", 1), timeout=10))
    # Until a retry is due, writes are refused at once: no transaction is even tried.
    tried = disk.commits
    for index in range(20):
        refused(lambda i=index: writer.ask(cmd.SetSetting(f"a{i}", i), timeout=10))
    assert disk.commits == tried
    # Each failed probe doubles the wait: 0.1, 0.2, 0.4, ... up to the cap, never sooner.
    for delay in (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0):
        assert probes_after(delay - 0.01) == 0
        assert probes_after(0.01) == 1
    assert health.degraded
    disk.full = False
    assert probes_after(cap) == 1
    assert not health.degraded

    # Down again right after coming back: it goes on backing off instead of probing at once.
    disk.full = True
    refused(lambda: writer.ask(cmd.SetSetting("b", 2), timeout=10))
    assert probes_after(0.1) == 0
    assert probes_after(cap) == 1
    # Down again long after: back to the first, short wait.
    disk.full = False
    assert probes_after(cap) == 1
    clock.advance(cap)
    disk.full = True
    refused(lambda: writer.ask(cmd.SetSetting("c", 3), timeout=10))
    disk.full = False
    assert probes_after(0.1) == 1
    assert not health.degraded
    assert writers.exits[-1].exits == []


def test_a_bug_while_retrying_fails_the_waiting_batch_and_crashes_the_writer(
    writers: Writers, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BugInProbe(FlakyCommitWriter):
        def _probe(self, conn: sa.Connection) -> None:
            raise KeyError("probe bug")

    disk = FlakyDisk()
    monkeypatch.setattr(FlakyCommitWriter, "disk", disk)
    clock = FakeClock()
    writer = start_writer(writers, health=Health(), clock=clock, actor=BugInProbe)
    disk.full = True
    refused(lambda: writer.ask(cmd.SetSetting("a", 1), timeout=10))
    clock.advance(60)
    with pytest.raises(InternalError, match="probe bug"):
        call(writer, cmd.SetSetting("b", 2)).result(timeout=10)  # a call's batch is told: a bug crashes
    assert writers.exits[-1].wait().error == "KeyError: 'probe bug'"


def test_an_unexpected_error_at_commit_still_crashes_the_writer(writers: Writers) -> None:
    class BugAtCommitWriter(DbWriter):
        def setup(self) -> None:
            super().setup()

            def bug(_conn: sa.Connection) -> None:
                raise KeyError("a bug")

            event.listen(self._conn, "commit", bug, once=True)

    health = Health()
    writer = start_writer(writers, health=health, clock=FakeClock(), actor=BugAtCommitWriter)
    with pytest.raises(InternalError, match="aborted"):
        call(writer, cmd.SetSetting("x", 1)).result(timeout=10)
    assert writers.exits[-1].wait().error == "KeyError: 'a bug'"
    assert health.conditions() == []


# -- the write lock held by another process (real condition, SQLite) ---------------------


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """The conditions below are a SQLite file's: these tests run on SQLite only."""
    return make_settings(f"sqlite:///{tmp_path}/nua.db", tmp_path)


@pytest.fixture
def sqlite_writers(sqlite_settings: Settings) -> Iterator[Writers]:
    started = Writers(sqlite_settings)
    yield started
    started.stop_all()


class HeldWriter(DbWriter):
    """A DbWriter that holds its first message at ``GATE`` before taking it: what queues meanwhile joins its batch."""

    gate = Gate()

    def on_receive(self, message: Any) -> Any:
        self.gate.hold()
        return super().on_receive(message)


def test_a_lock_held_past_the_busy_timeout_refuses_the_batchs_writes_but_serves_its_reads(
    sqlite_writers: Writers, sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_engine, "BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(HeldWriter, "gate", Gate())
    sqlite_writers.start().ask(cmd.SetSetting("before", 1), timeout=10)
    health, clock = Health(), FakeClock()
    writer = start_writer(sqlite_writers, health=health, clock=clock, actor=HeldWriter)
    other = sqlite3.connect(db_engine.sqlite_file(sqlite_settings.db), isolation_level=None)
    try:
        head = writer.ask(cmd.GetSetting("before"), block=False)
        HeldWriter.gate.wait_entered()
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        write = writer.ask(cmd.SetSetting("during", 2), block=False)
        count = writer.ask(cmd.CountUsers(), block=False)
        HeldWriter.gate.released.set()

        # One batch: its writable attempt met the lock; its reads ran again, read-only.
        assert head.get(timeout=10)["value"] == 1
        error = refused(lambda: write.get(timeout=10))
        assert count.get(timeout=10) == 0
        assert error.data["reason"] == "the database is locked by another process past the busy timeout (SQLITE_BUSY)"
        assert [c.reason for c in health.conditions()] == [error.data["reason"]]

        retry_now(writer, clock)  # still locked: the probe fails, the writer stays degraded
        assert [c.reason for c in health.conditions()] == [error.data["reason"]]
        refused(lambda: writer.ask(cmd.SetSetting("still", 3), timeout=10))
        assert writer.ask(cmd.GetSetting("before"), timeout=10)["value"] == 1
    finally:
        other.execute("ROLLBACK")
        other.close()
    retry_now(writer, clock)
    assert health.conditions() == []
    assert writer.ask(cmd.SetSetting("after", 4), timeout=10)["value"] == 4
    assert [stored(sqlite_settings, key) for key in ("during", "still")] == [None, None]
    assert sqlite_writers.exits[-1].exits == []


# -- the database file deleted or replaced (real condition, SQLite) ----------------------


def test_a_deleted_file_refuses_everything_until_a_nua_database_is_restored_and_loses_nothing_acked(
    sqlite_writers: Writers, sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = db_engine.sqlite_file(sqlite_settings.db)
    assert path is not None
    health, clock = Health(), FakeClock()
    writer = start_writer(sqlite_writers, health=health, clock=clock)
    assert writer.ask(cmd.SetSetting("acked", 1), timeout=10)["value"] == 1
    backup(path, tmp_path / "backup.db")

    path.unlink()
    # Not looked at yet: the check before the commit refuses it, nothing is acked into the gone file.
    error = refused(lambda: writer.ask(cmd.SetSetting("after_delete", 2), timeout=10))
    assert error.data["reason"].startswith(f"the database file {path} was deleted (restore it there")
    assert [c.reason for c in health.conditions()] == [error.data["reason"]]
    refused(lambda: writer.ask(cmd.GetSetting("acked"), timeout=10))  # no reads from a file that is gone

    retry_now(writer, clock)
    assert not path.exists()  # never an empty database in its place
    assert [c.reason for c in health.conditions()] == [error.data["reason"]]

    (tmp_path / "backup.db").rename(path)
    retry_now(writer, clock)
    assert health.conditions() == []
    assert writer.ask(cmd.GetSetting("acked"), timeout=10)["value"] == 1
    assert writer.ask(cmd.SetSetting("restored", 3), timeout=10)["value"] == 3
    assert (stored(sqlite_settings, "acked"), stored(sqlite_settings, "after_delete")) == (1, None)
    assert stored(sqlite_settings, "restored") == 3
    assert sqlite_writers.exits[-1].exits == []


def test_a_replaced_file_is_noticed_and_a_file_without_a_nua_schema_is_not_taken(
    sqlite_writers: Writers, sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = db_engine.sqlite_file(sqlite_settings.db)
    assert path is not None
    health, clock = Health(), FakeClock()
    writer = start_writer(sqlite_writers, health=health, clock=clock)
    writer.ask(cmd.SetSetting("old", 1), timeout=10)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).close()  # an empty file, as `touch` would leave
    foreign.replace(path)

    writer.ask(CheckDatabase(), timeout=10)  # the ticker's look, while idle
    assert [c.reason for c in health.conditions()] == [f"the database file {path} was replaced by another file"]
    refused(lambda: writer.ask(cmd.SetSetting("new", 2), timeout=10))

    retry_now(writer, clock)
    [condition] = health.conditions()
    assert condition.reason == f"{path} holds no nua database (restore it, or restart the daemon to create a new one)"
    refused(lambda: writer.ask(cmd.SetSetting("new", 2), timeout=10))
    with sqlite3.connect(path) as conn:  # the schema's creation was rolled back
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


@pytest.mark.parametrize(
    ("inotify", "check_interval_s"),
    # Without inotify the ticker's looks find it; with it, an hour between looks: only the watch can.
    [(False, 0.05), (True, 3600.0)],
    ids=["ticker-without-inotify", "inotify-alone"],
)
def test_a_deleted_file_is_noticed_while_idle(
    sqlite_writers: Writers,
    sqlite_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    inotify: bool,
    check_interval_s: float,
) -> None:
    if not inotify:
        monkeypatch.setattr(db_writer, "watch_or_none", lambda *_args: None)
    path = db_engine.sqlite_file(sqlite_settings.db)
    assert path is not None
    health = WatchedHealth()
    writer = start_writer(sqlite_writers, health=health, clock=FakeClock(), check_interval_s=check_interval_s)
    writer.ask(cmd.SetSetting("acked", 1), timeout=10)
    path.unlink()
    assert health.degraded_event.wait(10), "the writer did not notice the deletion"
    assert health.conditions()[0].reason.startswith(f"the database file {path} was deleted")
    assert writer.ask(Ping(), timeout=10) is True


def test_a_restarted_writer_whose_file_is_gone_starts_degraded_and_creates_nothing(
    sqlite_writers: Writers, sqlite_settings: Settings
) -> None:
    path = db_engine.sqlite_file(sqlite_settings.db)
    assert path is not None
    health = Health()
    health.degrade("db_writer", "left by the writer that crashed")
    sqlite_writers.start().stop(block=True, timeout=10)
    path.unlink()
    writer = start_writer(sqlite_writers, health=health, clock=FakeClock(), generation=2)
    assert writer.ask(Ping(), timeout=10) is True
    assert "the database file cannot be opened" in health.conditions()[0].reason
    refused(lambda: writer.ask(cmd.SetSetting("x", 1), timeout=10))
    assert not path.exists()
