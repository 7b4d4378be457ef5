"""Group commit: batches, one failure failing alone, a crash mid-batch, a stop behind queued work, load."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pykka
import pytest
import sqlalchemy as sa
from dbkit import ExitLog, Gate, GatedWriter, Writers, every_item, make_settings
from sqlalchemy import event

from nua.actors.call import call
from nua.actors.db_writer import DbWriter, WriterStats
from nua.actors.directory import Directory
from nua.actors.messages import Crash
from nua.actors.supervised import ChildContext, InjectedFaultError
from nua.actors.supervisor import ChildSpec, Intensity, Supervisor
from nua.model import checks
from nua.model import commands as cmd
from nua.model.errors import ConflictError, InternalError, ModelError, NotFoundError
from nua.settings import Settings


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """The writer's settings without audit retention, so that it starts no batch of its own.

    With ``keep_days`` the ticker's first look prunes, in a batch that WriterStats
    counts: on a slow start it fell inside a test reading the stats.
    """
    return make_settings(db_url, tmp_path, NUA_AUDIT_KEEP_DAYS="0")


def user(settings: Settings, name: str) -> cmd.AddUser:
    return checks.user_add({"username": name, "email": f"{name}@example.org", "password": "pw"}, settings.security)


def outcome(future: Future[Any]) -> Any:
    """The reply's value, or the type of the error it raised."""
    try:
        return future.result(timeout=10)
    except Exception as exc:
        return type(exc)


def test_queued_commands_share_one_transaction_and_fail_alone(writers: Writers, settings: Settings) -> None:
    gate = Gate()
    writer = writers.start(gate, actor=GatedWriter)
    head = call(writer, user(settings, "head"))
    gate.wait_entered()
    queued = [
        call(writer, user(settings, "a")),
        call(writer, user(settings, "a")),  # duplicate: fails alone
        call(writer, cmd.GetUser(999)),  # a failing read
        call(writer, user(settings, "b")),
        call(writer, cmd.SetSetting("broken", object())),  # unexpected error inside one command
        call(writer, cmd.ListUsers(names=("a", "b"))),  # sees the writes queued before it
        call(writer, cmd.CountUsers()),
    ]
    gate.released.set()

    assert outcome(head)["username"] == "head"
    results = [outcome(future) for future in queued]
    assert results[0]["username"] == "a"
    assert results[1:3] == [ConflictError, NotFoundError]
    assert results[3]["username"] == "b"
    assert results[4] is InternalError
    assert [found["username"] for found in results[5]["items"]] == ["a", "b"]
    assert results[6] == 3
    assert writer.ask(WriterStats()) == {"batches": 2, "commands": 1 + len(queued), "largest_batch": len(queued)}
    assert writer.ask(cmd.CountUsers()) == 3


def test_a_message_that_ends_a_batch_keeps_its_place_in_the_mailbox(writers: Writers, settings: Settings) -> None:
    gate = Gate()
    writer = writers.start(gate, actor=GatedWriter)
    head = call(writer, user(settings, "head"))
    gate.wait_entered()
    before = [call(writer, user(settings, name)) for name in ("a", "b")]
    stats = call(writer, WriterStats())  # not a command: it ends the batch
    after = call(writer, user(settings, "c"))
    gate.released.set()

    assert [outcome(future)["username"] for future in (head, *before, after)] == ["head", "a", "b", "c"]
    # Answered in its turn: after the batches of head and of a and b, before c's.
    assert outcome(stats) == {"batches": 2, "commands": 3, "largest_batch": 2}
    assert writer.ask(WriterStats()) == {"batches": 3, "commands": 4, "largest_batch": 2}


def test_the_rows_of_one_batch_share_its_timestamp(writers: Writers, settings: Settings) -> None:
    gate = Gate()
    writer = writers.start(gate, actor=GatedWriter)
    head = call(writer, cmd.SetSetting("head", 0))
    gate.wait_entered()
    queued = [call(writer, cmd.SetSetting(f"k{index}", index)) for index in range(3)]
    gate.released.set()

    stamps = [outcome(future)["updated_at"] for future in queued]
    assert len(set(stamps)) == 1  # one transaction, one timestamp, as SQL's CURRENT_TIMESTAMP
    assert outcome(head)["updated_at"] < stamps[0]  # the earlier commit, the earlier stamp
    listed = {row["key"]: row["updated_at"] for row in writer.ask(cmd.ListSettings(limit=1000))["items"]}
    assert [listed[f"k{index}"] for index in range(3)] == stamps  # stored as replied


def test_max_batch_bounds_each_transaction(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(db_url, tmp_path, NUA_DB_MAX_BATCH="2")
    writers = Writers(settings)
    try:
        gate = Gate()
        writer = writers.start(gate, actor=GatedWriter)
        head = call(writer, cmd.CountUsers())
        gate.wait_entered()
        futures = [call(writer, user(settings, f"u{index}")) for index in range(5)]
        gate.released.set()

        assert outcome(head) == 0
        assert [outcome(future)["id"] for future in futures] == [1, 2, 3, 4, 5]
        assert writer.ask(WriterStats()) == {"batches": 4, "commands": 6, "largest_batch": 2}
    finally:
        writers.stop_all()


def test_a_stop_behind_queued_commands_lets_them_commit(writers: Writers, settings: Settings) -> None:
    gate = Gate()
    writer = writers.start(gate, actor=GatedWriter)
    head = call(writer, user(settings, "head"))
    gate.wait_entered()
    before_stop = [call(writer, user(settings, f"q{index}")) for index in range(5)]
    stopped = writer.stop(block=False)
    gate.released.set()

    assert outcome(head)["id"] == 1
    assert [outcome(future)["id"] for future in before_stop] == [2, 3, 4, 5, 6]
    stopped.get(timeout=10)
    assert not writer.is_alive()

    reopened = writers.start()
    assert reopened.ask(cmd.CountUsers()) == 6


def test_told_crash_commits_the_open_batch_fails_the_calls_behind_it_and_the_writer_restarts(
    settings: Settings,
) -> None:
    gate = Gate()
    directory = Directory()
    root_exits = ExitLog()
    spec = ChildSpec("db_writer", start=lambda ctx: GatedWriter.start(ctx, settings, gate), shutdown_s=10)
    root = Supervisor.start(
        ChildContext("root", 1, root_exits),
        [spec],
        intensity=Intensity(max_restarts=3, max_seconds=10),
        directory=directory,
    )
    try:
        first = directory.wait_for("db_writer", timeout=10)
        acknowledged = call(first, user(settings, "committed"))
        gate.wait_entered()
        before = [call(first, user(settings, f"before{index}")) for index in range(3)]
        first.tell(Crash("mid-batch"))
        after = call(first, user(settings, "after"))  # queued behind the crash: never taken
        gate.released.set()

        assert outcome(acknowledged)["username"] == "committed"
        # A fault is no command: the batch open when it came commits first, in mailbox order.
        assert [outcome(future)["username"] for future in before] == ["before0", "before1", "before2"]
        assert outcome(after) is pykka.ActorDeadError  # failed at the writer's exit, not left hanging

        second = directory.wait_for("db_writer", timeout=10, not_ref=first)
        assert not first.is_alive()
        names = [found["username"] for found in second.ask(cmd.ListUsers())["items"]]
        assert names == ["committed", "before0", "before1", "before2"]
        assert second.ask(user(settings, "after"))["username"] == "after"  # the writer works again
    finally:
        root.stop(block=True, timeout=10)


def test_asked_crash_mid_batch_is_its_callers_error_and_keeps_the_writer(writers: Writers, settings: Settings) -> None:
    gate = Gate()
    writer = writers.start(gate, actor=GatedWriter)
    head = call(writer, cmd.CountUsers())
    gate.wait_entered()
    before = call(writer, user(settings, "x"))
    crash = call(writer, Crash("asked"))
    after = call(writer, user(settings, "y"))
    gate.released.set()

    assert outcome(head) == 0
    assert outcome(before)["username"] == "x"
    assert outcome(crash) is InjectedFaultError
    assert outcome(after)["username"] == "y"
    assert writer.ask(cmd.CountUsers()) == 2
    assert writer.is_alive()


def test_concurrent_adds_with_duplicates_count_exactly(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    threads, per_thread, shared_every = 8, 500, 10
    accepted: list[str] = []
    rejected: list[str] = []
    other_errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def run(thread: int) -> None:
        start.wait()
        for index in range(per_thread):
            # Every tenth name is tried by all threads at once: exactly one may win.
            name = f"shared{index}" if index % shared_every == 0 else f"t{thread}n{index}"
            try:
                call(writer, user(settings, name)).result(timeout=60)
            except ConflictError:
                with lock:
                    rejected.append(name)
            except (ModelError, TimeoutError) as exc:
                with lock:
                    other_errors.append(exc)
            else:
                with lock:
                    accepted.append(name)

    workers = [threading.Thread(target=run, args=(thread,)) for thread in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    shared = per_thread // shared_every
    assert other_errors == []
    assert len(accepted) == threads * (per_thread - shared) + shared
    assert len(set(accepted)) == len(accepted)
    assert len(rejected) == (threads - 1) * shared
    assert set(rejected) == {f"shared{index}" for index in range(0, per_thread, shared_every)}
    assert writer.ask(cmd.CountUsers()) == len(accepted)
    listed = every_item(writer, cmd.ListUsers())
    assert sorted(found["username"] for found in listed) == sorted(accepted)
    assert [found["id"] for found in listed] == list(range(1, len(accepted) + 1))
    stats = writer.ask(WriterStats())
    assert stats["batches"] < stats["commands"]  # group commit happened


@pytest.mark.parametrize("told", [False, True])
def test_crash_outside_a_batch_keeps_the_base_semantics(writers: Writers, told: bool) -> None:
    writer = writers.start()
    if told:
        writer.tell(Crash("alone"))
        assert writers.exits[-1].wait().error == "InjectedFaultError: alone"
    else:
        with pytest.raises(InjectedFaultError):
            writer.ask(Crash("alone"))
        assert writer.ask(cmd.CountUsers()) == 0


class FailingCommitWriter(DbWriter):
    """A DbWriter whose next commit fails with an error that is no database's (a bug, whatever its text says).

    A real full disk or lost server degrades the writer instead: see test_db_outage.
    """

    def setup(self) -> None:
        super().setup()
        assert self._conn is not None

        def refuse(_conn: sa.Connection) -> None:
            raise OSError("disk full (simulated)")

        event.listen(self._conn, "commit", refuse, once=True)


def test_a_failed_commit_fails_the_whole_batch_and_crashes_the_writer(writers: Writers, settings: Settings) -> None:
    writer = writers.start(actor=FailingCommitWriter)

    with pytest.raises(InternalError, match="disk full"):
        call(writer, user(settings, "never")).result(timeout=10)

    assert writers.exits[-1].wait().error == "OSError: disk full (simulated)"
    assert writers.start().ask(cmd.CountUsers()) == 0  # nothing half-written, nothing acknowledged
