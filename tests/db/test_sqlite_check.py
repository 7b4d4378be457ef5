"""The standard library's look at a SQLite database before the daemon is ready, held to what the DB writer finds."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from dbkit import Writers, make_settings

from nua.model import sqlite_check
from nua.model.commands import CountUsers
from nua.model.schema_version import SCHEMA_VERSION


def test_a_first_start_creates_the_file_in_a_private_directory_and_the_writer_then_opens_it(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "nua.db"
    config = make_settings(f"sqlite:///{path}", tmp_path)
    assert sqlite_check.checkable(config.db)
    assert sqlite_check.sqlite_path(config.db) == path
    sqlite_check.check(config.db)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []  # nothing written but WAL
    conn.close()
    writers = Writers(config)
    try:
        writer = writers.start()
        assert writer.ask(CountUsers(), timeout=10) == 0  # the writer made its schema in the file checked
    finally:
        writers.stop_all()
    sqlite_check.check(config.db)  # and again, now that it holds nua's schema


@pytest.mark.parametrize(
    ("prepare", "reason"),
    [
        (lambda path: path.write_bytes(b"garbage " * 512), "file is not a database"),
        (lambda path: path.mkdir(), "cannot open the database"),
    ],
)
def test_a_file_that_is_no_database_is_refused_with_sqlites_reason(tmp_path: Path, prepare, reason: str) -> None:
    path = tmp_path / "nua.db"
    prepare(path)
    config = make_settings(f"sqlite:///{path}", tmp_path)
    with pytest.raises(sqlite_check.DatabaseCheckError, match=reason):
        sqlite_check.check(config.db)


def test_a_newer_schema_is_refused_and_the_current_one_accepted(tmp_path: Path) -> None:
    path = tmp_path / "nua.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE nua_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO nua_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    conn.close()
    config = make_settings(f"sqlite:///{path}", tmp_path)
    sqlite_check.check(config.db)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE nua_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.close()
    with pytest.raises(sqlite_check.DatabaseCheckError, match="newer than this nua's"):
        sqlite_check.check(config.db)


def test_memory_needs_no_look_and_another_url_is_not_checkable(tmp_path: Path) -> None:
    memory = make_settings("sqlite://", tmp_path)
    assert sqlite_check.sqlite_path(memory.db) is None
    sqlite_check.check(memory.db)
    uri = make_settings(f"sqlite:///{tmp_path / 'nua.db'}?timeout=5", tmp_path)
    assert not sqlite_check.checkable(uri.db)
