"""Outside outages on a real daemon: ``status`` says degraded and why, then running; it exits only when asked."""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from daemon_helpers import DaemonEnv, is_alive, wait_until

from nua.rpc.client import Client
from nua.rpc.errors import UNAVAILABLE, RpcError, UnavailableError

PG_URL_ENV = "NUA_TEST_PG_URL"


def status_in(daemon: DaemonEnv, state: str) -> dict[str, Any] | None:
    code, report = daemon.status()
    return report if (code, report["state"]) == (0, state) else None


def db_writer_node(report: dict[str, Any]) -> dict[str, Any]:
    return next(child for child in report["tree"]["children"] if child["id"] == "db_writer")


def set_setting(client: Client, key: str, value: Any) -> int | None:
    """Call ``setting_set``: ``None`` when it was acknowledged, else the error's code."""
    try:
        client.call("setting_set", key, value)
    except RpcError as exc:
        return exc.code
    return None


def backup(path: Path, to: Path) -> None:
    """A consistent copy of the live database, its WAL included (SQLite's backup API)."""
    source, target = sqlite3.connect(path), sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def test_a_deleted_database_file_shows_degraded_then_recovers_when_restored(daemon: DaemonEnv) -> None:
    pid = daemon.start()
    with Client(daemon.endpoint, timeout=10) as client:
        client.call("setting_set", "acked", 1)
    backup(daemon.db, daemon.root / "backup.db")

    daemon.db.unlink()
    # Noticed without any call: the writer looks at its file while idle.
    report = wait_until(lambda: status_in(daemon, "degraded"), what="status to say degraded")
    [condition] = report["degraded"]
    assert condition["component"] == "db_writer"
    assert condition["reason"].startswith(f"the database file {daemon.db} was deleted")
    assert report["message"].startswith(f"running (pid {pid}) but degraded: db_writer: the database file")
    text = daemon.cli("status")
    assert text.returncode == 0
    assert "degraded" in text.stdout
    assert "was deleted" in text.stdout
    with Client(daemon.endpoint, timeout=10) as client, pytest.raises(RpcError) as caught:
        client.call("setting_set", "refused", 2)
    assert caught.value.code == UNAVAILABLE
    assert caught.value.message.startswith("database unavailable: the database file")
    logged = daemon.wait_for_log("database_unavailable")
    assert logged["reason"] == condition["reason"]
    assert not daemon.db.exists()  # no empty database made in its place
    # Retried all along, refused calls included, yet logged once: per change, not per attempt.
    events = [event["event"] for event in daemon.log_events()]
    assert events.count("database_unavailable") == 1

    (daemon.root / "backup.db").rename(daemon.db)
    report = wait_until(lambda: status_in(daemon, "running"), what="status to say running again")
    assert report["degraded"] == []
    assert db_writer_node(report)["restarts"] == 0
    with Client(daemon.endpoint, timeout=10) as client:
        assert client.call("setting_get", "acked")["value"] == 1
        assert client.call("setting_set", "after", 3)["value"] == 3
        with pytest.raises(RpcError):
            client.call("setting_get", "refused")
    daemon.wait_for_log("database_available")

    assert is_alive(pid)  # it exits only when asked
    assert daemon.cli("stop").returncode == 0
    daemon.wait_gone(pid)


@pytest.fixture
def pg_daemon(daemon: DaemonEnv) -> Iterator[tuple[DaemonEnv, str, sa.Engine]]:
    """The daemon on its own PostgreSQL schema, its connections named; the admin engine that can kill them."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip(f"PostgreSQL suite not run: set {PG_URL_ENV}")
    schema = f"nua_test_{secrets.token_hex(6)}"
    name = f"nua_outage_{secrets.token_hex(4)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}", "application_name": name})
    # A short cap: kills in quick succession make the writer back off up to it.
    daemon.write_config(db={"url": url.render_as_string(hide_password=False), "reconnect_max_s": 0.5})
    try:
        yield daemon, name, admin
    finally:
        daemon.kill_all()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def test_postgresql_connections_killed_eight_times_in_a_few_seconds_never_end_the_daemon(
    pg_daemon: tuple[DaemonEnv, str, sa.Engine],
) -> None:
    daemon, name, admin = pg_daemon
    pid = daemon.start()
    codes: list[int | None] = []
    with Client(daemon.endpoint, timeout=10) as client:
        for round_ in range(8):
            with admin.connect() as conn:
                ended = conn.execute(
                    sa.text("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = :n"),
                    {"n": name},
                ).all()
            # The writer's, and the reader's once something read (the cron actor does at its start).
            assert ended
            assert all(row == (True,) for row in ended)
            # The first call after the kill is refused; the writer reconnects on its own.
            codes.append(set_setting(client, f"k{round_}", round_))

            def written(r: int = round_) -> bool:
                code = set_setting(client, f"k{r}", r)
                assert code in {None, UNAVAILABLE}
                return code is None

            wait_until(written, what=f"the writer to reconnect (round {round_})")
        assert codes == [UNAVAILABLE] * 8

        def read() -> dict[str, int] | None:
            # The reader's connection was killed too: its first read fails alone, and it reconnects.
            try:
                return {row["key"]: row["value"] for row in client.call("setting_list")["items"]}
            except UnavailableError:
                return None

        stored = wait_until(read, what="the reader to reconnect")
    assert all(stored[f"k{r}"] == r for r in range(8))
    assert is_alive(pid)
    code, report = daemon.status()
    assert (code, report["state"]) == (0, "running")
    assert db_writer_node(report)["restarts"] == 0
    assert daemon.cli("stop").returncode == 0
    daemon.wait_gone(pid)


def test_a_cron_restarted_during_an_outage_keeps_the_daemon_up_and_reads_its_jobs_when_the_database_returns(
    daemon: DaemonEnv,
) -> None:
    daemon.write_config(debug={"allow_fault_injection": True})
    pid = daemon.start()
    with Client(daemon.endpoint, timeout=10) as client:
        client.call("cron_add", "kept", {"schedule": "@yearly", "call": "user_count"})
    backup(daemon.db, daemon.root / "backup.db")
    daemon.db.unlink()
    wait_until(lambda: status_in(daemon, "degraded"), what="status to say degraded")
    with Client(daemon.endpoint, timeout=10) as client:
        client.call("sys_fault", "cron")

    def cron_degraded() -> dict[str, Any] | None:
        report = status_in(daemon, "degraded")
        components = [] if report is None else [c["component"] for c in report["degraded"]]
        return report if "cron" in components else None

    # The restarted cron cannot read its jobs: it runs all the same and says so (a start that raised ended the daemon).
    wait_until(cron_degraded, what="status to name cron")
    assert is_alive(pid)
    (daemon.root / "backup.db").rename(daemon.db)
    wait_until(lambda: status_in(daemon, "running"), what="status to say running again")
    assert is_alive(pid)
    with Client(daemon.endpoint, timeout=10) as client:
        assert client.call("cron_run_now", "kept")["run"] >= 1  # the cron holds its job again
