"""A fresh database and an existing one: create-or-upgrade, the recorded version, no copy of the configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pykka
import pytest
import sqlalchemy as sa
from dbkit import Writers, make_settings

from nua.actors.messages import Ping
from nua.model import checks, schema
from nua.model import commands as cmd
from nua.model import engine as db_engine
from nua.model.base import utcnow
from nua.model.schema import SchemaError, ensure_schema, meta
from nua.model.setting import settings_table
from nua.settings import Settings


def read_meta(url: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {row.key: row.value for row in conn.execute(sa.select(meta))}
    finally:
        engine.dispose()


def test_an_existing_database_keeps_its_rows_and_its_settings(
    writers: Writers, settings: Settings, db_url: str
) -> None:
    first = writers.start()
    data = {"username": "kept", "email": "k@example.org", "password": "p"}
    user = first.ask(checks.user_add(data, settings.security))
    first.ask(checks.setting_set("site.max_batch", 7, 100))
    first.stop(block=True, timeout=10)
    recorded = read_meta(db_url)
    assert recorded["schema_version"] == str(schema.SCHEMA_VERSION)

    second = writers.start()

    assert second.ask(cmd.ListUsers())["items"] == [user]
    assert second.ask(checks.setting_get("site.max_batch"))["value"] == 7
    assert read_meta(db_url) == recorded


def test_ensure_schema_is_idempotent(settings: Settings) -> None:
    engine = db_engine.create(settings.db)
    try:
        with engine.begin() as conn:
            assert ensure_schema(conn).created
            keys = set(conn.execute(sa.text("SELECT key FROM settings")).scalars())
        assert keys == set()  # the configuration is never copied into the database
        with engine.begin() as conn:
            again = ensure_schema(conn)
            assert not again.created
            assert again.upgraded_from is None
    finally:
        engine.dispose()


def test_a_newer_schema_is_refused_at_start(writers: Writers, db_url: str) -> None:
    writers.start().stop(block=True, timeout=10)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value="99"))
    engine.dispose()

    refused = writers.start()

    with pytest.raises(pykka.ActorDeadError):
        refused.ask(Ping(), timeout=10)
    exited = writers.exits[-1].wait()
    assert exited.error is not None
    assert "newer" in exited.error


def test_an_older_schema_is_upgraded_once(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db_engine.create(settings.db)
    steps: list[int] = []

    def add_notes(conn: sa.Connection) -> None:
        steps.append(1)
        conn.exec_driver_sql("CREATE TABLE notes (body TEXT)")

    try:
        with engine.begin() as conn:
            ensure_schema(conn)
        current = schema.SCHEMA_VERSION
        monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
        monkeypatch.setitem(schema.UPGRADES, current, add_notes)
        with engine.begin() as conn:
            state = ensure_schema(conn)
        with engine.begin() as conn:
            again = ensure_schema(conn)
            conn.exec_driver_sql("INSERT INTO notes (body) VALUES ('upgraded')")
        assert (state.upgraded_from, state.version) == (current, current + 1)
        assert again.upgraded_from is None
        assert steps == [1]
    finally:
        engine.dispose()


def test_a_failed_upgrade_leaves_the_database_as_it_was(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db_engine.create(settings.db)

    def broken(conn: sa.Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE half_done (id INTEGER)")
        raise RuntimeError("upgrade step failed")

    try:
        with engine.begin() as conn:
            ensure_schema(conn)
        current = schema.SCHEMA_VERSION
        monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
        monkeypatch.setitem(schema.UPGRADES, current, broken)
        with pytest.raises(RuntimeError), engine.begin() as conn:
            ensure_schema(conn)
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("half_done")
            assert conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar() == str(current)
    finally:
        engine.dispose()


def test_ensure_schema_refuses_a_newer_version_directly(settings: Settings) -> None:
    engine = db_engine.create(settings.db)
    try:
        with engine.begin() as conn:
            ensure_schema(conn)
            conn.execute(meta.update().where(meta.c.key == "schema_version").values(value="3"))
        with pytest.raises(SchemaError), engine.begin() as conn:
            ensure_schema(conn)
    finally:
        engine.dispose()


def test_sqlite_connections_get_wal_synchronous_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/pragmas.db"
    for mode, number in (("FULL", 2), ("NORMAL", 1)):
        engine = db_engine.create(make_settings(url, tmp_path, NUA_DB_SQLITE_SYNCHRONOUS=mode).db)
        try:
            with engine.connect() as conn:
                pragma: dict[str, Any] = {
                    name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                    for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
                }
        finally:
            engine.dispose()
        assert pragma == {
            "journal_mode": "wal",
            "synchronous": number,
            "foreign_keys": 1,
            "busy_timeout": db_engine.BUSY_TIMEOUT_MS,
        }


def test_an_older_databases_copy_of_the_configuration_is_removed_and_its_own_settings_kept(
    settings: Settings,
) -> None:
    engine = db_engine.create(settings.db)
    now = utcnow()
    try:
        with engine.begin() as conn:
            ensure_schema(conn)
            # What an older nua left: the configuration copied at its first start, and its mark.
            conn.execute(meta.insert().values(key=schema.COPIED_CONFIGURATION, value="2026-01-01T00:00:00+00:00"))
            rows = [("zmq.port", 5001), ("db.url", "sqlite:///x"), ("services.web", {}), ("site.name", "mine")]
            conn.execute(sa.insert(settings_table), [{"key": k, "value": v, "updated_at": now} for k, v in rows])
        with engine.begin() as conn:
            ensure_schema(conn)
            keys = set(conn.execute(sa.select(settings_table.c.key)).scalars())
            marks = set(conn.execute(sa.select(meta.c.key)).scalars())
        assert keys == {"site.name"}
        assert schema.COPIED_CONFIGURATION not in marks
    finally:
        engine.dispose()
