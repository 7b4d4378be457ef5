"""The DB reader, asked directly (no ZeroMQ), beside a writer on the same database, on every backend."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pykka
import pytest
import sqlalchemy as sa
from dbkit import ExitLog, Gate, GatedWriter, Writers
from outagekit import backup

from nua.actors.db_reader import CheckReadable, DbReader
from nua.actors.health import Health
from nua.actors.supervised import ChildContext
from nua.model import checks
from nua.model import commands as cmd
from nua.model import engine as db_engine
from nua.model.errors import InternalError, NotFoundError, UnavailableError
from nua.settings import Settings


def add(writer: pykka.ActorRef[Any], settings: Settings, name: str) -> dict[str, Any]:
    data = {"username": name, "email": f"{name}@example.org", "password": "pw"}
    user: dict[str, Any] = writer.ask(checks.user_add(data, settings.security))
    return user


def test_every_acknowledged_write_is_read(
    writer: pykka.ActorRef[Any], reader: pykka.ActorRef[Any], settings: Settings
) -> None:
    for index in range(20):
        user = add(writer, settings, f"u{index}")
        # Asked right after the acknowledgement: the reader's next transaction sees the commit.
        assert reader.ask(cmd.GetUser(user["id"])) == user
        assert reader.ask(cmd.CountUsers()) == index + 1
        writer.ask(checks.setting_set("app.last", index, 100))
        assert reader.ask(checks.setting_get("app.last"))["value"] == index
    writer.ask(checks.group_add("ops"))
    writer.ask(checks.group_add_members("ops", [1, 2]))
    assert [g["name"] for g in reader.ask(cmd.ListGroups())["items"]] == ["ops"]
    assert [u["id"] for u in reader.ask(cmd.GroupMembers("ops"))["items"]] == [1, 2]
    assert reader.ask(cmd.ListUsers(limit=5, after=15))["next"] is None
    writer.ask(checks.setting_set("app.first", 0, 100))
    assert reader.ask(cmd.ListSettings(limit=1))["next"] == "app.first"


def test_a_read_does_not_wait_for_the_writer(writers: Writers, settings: Settings, tmp_path: Any, backend: str) -> None:
    gate = Gate()
    writer = writers.start(gate, actor=GatedWriter)
    held = writer.ask(checks.setting_set("app.held", 1, 100), block=False)
    gate.wait_entered()  # the writer is held at the start of a batch: whatever is queued to it waits
    reader = DbReader.start(ChildContext("db_reader", 1, ExitLog()), settings)
    try:
        with pytest.raises(NotFoundError):
            reader.ask(checks.setting_get("app.held"), timeout=10)  # answered now, without the batch
    finally:
        gate.released.set()
        held.get(timeout=10)
        assert reader.ask(checks.setting_get("app.held"), timeout=10)["value"] == 1
        reader.stop(block=True, timeout=10)


def test_the_reader_never_changes_the_database(reader: pykka.ActorRef[Any], settings: Settings) -> None:
    with pytest.raises(TypeError):
        reader.ask(checks.setting_set("app.x", 1, 100))  # not a read: refused as an unknown message
    with pytest.raises(TypeError):
        reader.ask(cmd.DeleteAllUsers())
    assert cmd.SetSetting not in cmd.READ_COMMANDS
    assert reader.is_alive()


def test_the_read_engine_refuses_writes_on_sqlite(
    reader: pykka.ActorRef[Any], settings: Settings, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("query_only is SQLite's; on PostgreSQL the reader's commands are its only guard")
    engine = db_engine.create(settings.db, reader=True)
    try:
        with engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match=r"readonly|read-only|query_only"):
            conn.exec_driver_sql("DELETE FROM settings")
    finally:
        engine.dispose()


def test_a_failed_read_fails_alone_and_the_next_one_reconnects(
    writer: pykka.ActorRef[Any], reader: pykka.ActorRef[Any], settings: Settings, db_url: str
) -> None:
    add(writer, settings, "ann")
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE users RENAME TO users_away")
        with pytest.raises(InternalError):
            reader.ask(cmd.CountUsers())
        assert reader.is_alive()
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE users_away RENAME TO users")
    finally:
        engine.dispose()
    assert reader.ask(cmd.CountUsers()) == 1


def backed_up(writer: pykka.ActorRef[Any], settings: Settings, backend: str, tmp_path: Path) -> tuple[Path, Path]:
    """The SQLite file holding one user, and a consistent copy of it (skips on other backends)."""
    if backend != "sqlite":
        pytest.skip("a database file is SQLite's")
    path = db_engine.sqlite_file(settings.db)
    assert path is not None
    add(writer, settings, "ann")
    backup_file = tmp_path / "backup.db"
    backup(path, backup_file)
    return path, backup_file


def test_a_deleted_file_is_unavailable_and_a_restored_one_is_read_not_the_old(
    writer: pykka.ActorRef[Any], settings: Settings, backend: str, tmp_path: Any
) -> None:
    path, backup = backed_up(writer, settings, backend, tmp_path)  # one user
    add(writer, settings, "bob")  # the live file (soon deleted) has two
    health = Health()
    reader = DbReader.start(ChildContext("db_reader", 1, ExitLog()), settings, health)
    try:
        assert reader.ask(cmd.CountUsers()) == 2  # the reader has the live file open
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with pytest.raises(UnavailableError, match="cannot be read"):
            reader.ask(cmd.CountUsers())
        assert [c.component for c in health.conditions()] == ["db_reader"]
        assert not path.exists()  # the reader never creates a database
        shutil.copyfile(backup, path)
        assert reader.ask(cmd.CountUsers()) == 1  # the restored file, not the deleted one it had open
        assert health.conditions() == []
    finally:
        reader.stop(block=True, timeout=10)


def test_a_degraded_reader_recovers_by_itself_once_the_file_is_back(
    writer: pykka.ActorRef[Any], settings: Settings, backend: str, tmp_path: Any
) -> None:
    # Without a look of its own, status called the reader degraded until some client read.
    path, backup = backed_up(writer, settings, backend, tmp_path)
    health = Health()
    reader = DbReader.start(ChildContext("db_reader", 1, ExitLog()), settings, health, check_interval_s=None)
    try:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with pytest.raises(UnavailableError):
            reader.ask(cmd.CountUsers())
        reader.ask(CheckReadable())  # an ask returns once the look is done
        assert [c.component for c in health.conditions()] == ["db_reader"]  # still gone
        path.write_bytes(b"")  # a file, but no nua database: still degraded
        reader.ask(CheckReadable())
        assert [c.component for c in health.conditions()] == ["db_reader"]
        shutil.copyfile(backup, path)
        reader.ask(CheckReadable())
        assert health.conditions() == []  # back, and no read was needed to say so
        assert reader.ask(cmd.CountUsers()) == 1
    finally:
        reader.stop(block=True, timeout=10)


def test_a_file_without_nua_schema_put_back_is_unavailable_not_a_bug(
    writer: pykka.ActorRef[Any], settings: Settings, backend: str, tmp_path: Path
) -> None:
    # Read as a bug, each client call logged a traceback: a log any client could fill.
    path, _backup = backed_up(writer, settings, backend, tmp_path)
    health = Health()
    reader = DbReader.start(ChildContext("db_reader", 1, ExitLog()), settings, health, check_interval_s=None)
    try:
        assert reader.ask(cmd.CountUsers()) == 1
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with sqlite3.connect(path) as other:
            other.execute("CREATE TABLE users (id INTEGER)")
        for _ in range(3):
            with pytest.raises(UnavailableError, match="holds no nua database"):
                reader.ask(cmd.CountUsers())
        assert [c.component for c in health.conditions()] == ["db_reader"]
        assert reader.is_alive()
    finally:
        reader.stop(block=True, timeout=10)
