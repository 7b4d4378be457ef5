"""Outages made for real: a full disk (a small tmpfs), a read-only file system (a bind mount), killed connections.

The first two need root and are skipped with the reason otherwise; the last needs
PostgreSQL (``NUA_TEST_PG_URL``).

Each asserts what a client sees (an ``unavailable`` error naming the cause), that
the writer never exits, that reads go on where the database can still be read,
that it comes back by itself once the cause is gone, and that every acknowledged
write is there while nothing refused is.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
import sqlalchemy as sa
from dbkit import Writers, every_item, make_settings
from outagekit import FakeClock, backup, refused, retry_now, start_writer

from nua.actors.db_writer import CheckDatabase
from nua.actors.health import Health
from nua.actors.messages import Ping
from nua.model import commands as cmd
from nua.model.errors import UnavailableError

# A value big enough that a few of them overflow the small file system.
BIG = "x" * 60_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted under the test's directory, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    with path.open("wb", buffering=0) as filler:
        for chunk in (65536, 512):  # big blocks, then the last crumbs
            assert write_until_error(filler, chunk) == errno.ENOSPC


def write_until_error(filler: BinaryIO, chunk: int) -> int | None:
    """Append ``chunk`` bytes at a time until a write fails; that failure's errno."""
    try:
        while True:
            filler.write(b"\0" * chunk)
    except OSError as exc:
        return exc.errno


def test_a_full_disk_refuses_writes_serves_reads_and_recovers_when_space_returns(
    small_disk: Path, tmp_path: Path
) -> None:
    settings = make_settings(f"sqlite:///{small_disk}/nua.db", tmp_path)
    writers = Writers(settings)
    health, clock = Health(), FakeClock()
    try:
        writer = start_writer(writers, health=health, clock=clock)
        assert writer.ask(cmd.SetSetting("kept", 1), timeout=10)["value"] == 1
        fill(small_disk / "filler")

        acked: list[str] = []
        error: UnavailableError | None = None
        for index in range(100):
            try:
                writer.ask(cmd.SetSetting(f"big.{index}", BIG), timeout=10)
            except UnavailableError as exc:
                error = exc
                break
            acked.append(f"big.{index}")
        assert error is not None, "the full disk never refused a write"
        assert "full" in error.data["reason"]
        assert "SQLITE_FULL" in error.data["reason"]
        assert writer.ask(Ping(), timeout=10) is True
        assert [c.reason for c in health.conditions()] == [error.data["reason"]]
        # The disk is full, not unreadable: reads go on.
        assert writer.ask(cmd.GetSetting("kept"), timeout=10)["value"] == 1
        refused(lambda: writer.ask(cmd.SetSetting("refused", BIG), timeout=10))

        (small_disk / "filler").unlink()
        retry_now(writer, clock)
        assert health.conditions() == []
        assert writer.ask(cmd.SetSetting("after", 2), timeout=10)["value"] == 2
        for key in acked:
            assert writer.ask(cmd.GetSetting(key), timeout=10)["value"] == BIG
        assert writers.exits[-1].exits == []
    finally:
        writers.stop_all()
    engine = sa.create_engine(settings.db.url)
    try:
        with engine.connect() as conn:
            keys = set(conn.execute(sa.text("SELECT key FROM settings")).scalars())
    finally:
        engine.dispose()
    assert {"kept", "after", *acked} <= keys
    assert "refused" not in keys
    assert f"big.{len(acked)}" not in keys


def test_a_restored_file_on_a_read_only_file_system_keeps_writes_refused_until_writable(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root (chmod does not stop root)")
    here, elsewhere = tmp_path / "db", tmp_path / "restored"
    here.mkdir()
    elsewhere.mkdir()
    settings = make_settings(f"sqlite:///{here}/nua.db", tmp_path)
    writers = Writers(settings)
    health, clock = Health(), FakeClock()
    mounted = False
    try:
        writer = start_writer(writers, health=health, clock=clock)
        assert writer.ask(cmd.SetSetting("acked", 1), timeout=10)["value"] == 1
        backup(here / "nua.db", elsewhere / "nua.db")
        (here / "nua.db").unlink()
        writer.ask(CheckDatabase(), timeout=10)
        assert health.conditions()[0].reason.startswith(f"the database file {here}/nua.db was deleted")

        # The file comes back, but on a read-only file system (a read-only bind mount over its directory).
        subprocess.run(["mount", "--bind", str(elsewhere), str(here)], check=True)
        mounted = True
        subprocess.run(["mount", "-o", "remount,bind,ro", str(here)], check=True)
        retry_now(writer, clock)
        [condition] = health.conditions()
        assert condition.reason.startswith(f"the file system holding {here}/nua.db is read-only (")
        error = refused(lambda: writer.ask(cmd.SetSetting("refused", 2), timeout=10))
        assert error.data["reason"] == condition.reason

        subprocess.run(["umount", str(here)], check=True)
        mounted = False
        (elsewhere / "nua.db").rename(here / "nua.db")
        retry_now(writer, clock)
        assert health.conditions() == []
        assert writer.ask(cmd.GetSetting("acked"), timeout=10)["value"] == 1
        assert writer.ask(cmd.SetSetting("after", 3), timeout=10)["value"] == 3
        refused_row = every_item(writer, cmd.ListSettings())
        assert "refused" not in {row["key"] for row in refused_row}
        assert writers.exits[-1].exits == []
    finally:
        writers.stop_all()
        if mounted:
            subprocess.run(["umount", str(here)], check=False)


@pytest.fixture
def pg_url(backend: str, db_url: str) -> str:
    """The test's PostgreSQL schema, its connections named so that only they are terminated."""
    if backend != "postgresql":
        pytest.skip("terminating server connections is a PostgreSQL condition")
    name = f"nua_outage_{secrets.token_hex(4)}"
    return sa.make_url(db_url).update_query_dict({"application_name": name}).render_as_string(hide_password=False)


def terminate(admin: sa.Engine, application_name: str) -> int:
    """Terminate every server connection named ``application_name``, waiting until each is gone."""
    with admin.connect() as conn:
        ended = conn.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
                " WHERE application_name = :name"
            ),
            {"name": application_name},
        ).scalar_one()
    return int(ended)


def test_postgresql_connections_killed_eight_times_never_end_the_writer(pg_url: str, tmp_path: Path) -> None:
    settings = make_settings(pg_url, tmp_path)
    name = sa.make_url(pg_url).query["application_name"]
    assert isinstance(name, str)
    admin = sa.create_engine(os.environ["NUA_TEST_PG_URL"], isolation_level="AUTOCOMMIT")
    writers = Writers(settings)
    health, clock = Health(), FakeClock()
    try:
        writer = start_writer(writers, health=health, clock=clock)
        for round_ in range(8):
            assert writer.ask(cmd.SetSetting(f"acked.{round_}", round_), timeout=10)["value"] == round_
            assert terminate(admin, name) == 1
            error = refused(lambda r=round_: writer.ask(cmd.SetSetting(f"lost.{r}", r), timeout=10))
            assert "SQLSTATE 57P01" in error.data["reason"] or "connection" in error.data["reason"]
            assert health.degraded
            retry_now(writer, clock)
            assert health.conditions() == []
        assert writer.ask(Ping(), timeout=10) is True
        assert writers.exits[-1].exits == []
        rows = every_item(writer, cmd.ListSettings())
        keys = {row["key"] for row in rows}
        assert {f"acked.{r}" for r in range(8)} <= keys
        assert not {key for key in keys if key.startswith("lost.")}
    finally:
        writers.stop_all()
        admin.dispose()
