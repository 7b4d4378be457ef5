"""Prepared statements: the precomputed bind plan gives exactly what SQLAlchemy's general path gives."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import InvalidRequestError

from nua.model import commands as cmd
from nua.model import engine as db_engine
from nua.model import operations
from nua.model.base import iso, transaction_time, utcnow
from nua.model.compiled import Prepared
from nua.model.setting import settings_table
from nua.settings import DbSettings

STAMP = datetime(2026, 11, 28, 3, 25, 18, 123456, tzinfo=UTC)
USER_ROW = {
    "id": 7,
    "username": "ada",
    "email": "ada@example.org",
    "password_hash": "scrypt$x",
    "role": "user",
    "display_name": "Ada",
    "created_at": STAMP,
    "updated_at": STAMP,
}

# The hot statements of nua.model.operations, each with the values it is run with.
CASES: list[tuple[str, Prepared | None, dict[str, Any]]] = [
    ("same name or mail", operations._SAME_NAME_OR_MAIL, {"username": "ada", "email": "ada@example.org"}),
    ("id taken", operations._ID_TAKEN, {"id": 7}),
    ("highest id", operations._HIGHEST_ID, {}),
    ("insert user", operations._INSERT_USER, USER_ROW),
    ("setting upsert", None, {"key": "a.b", "value": {"nested": [1, "x", None]}, "updated_at": STAMP}),
]
DIALECTS: list[Dialect] = [sqlite.dialect(), postgresql.dialect()]  # type: ignore[no-untyped-call]


def _statement(prepared: Prepared | None, dialect: Dialect) -> Prepared:
    if prepared is not None:
        return prepared
    upsert = operations._upsert_setting(dialect.name)
    assert upsert is not None
    return upsert


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize(("name", "prepared", "values"), CASES, ids=[c[0] for c in CASES])
def test_the_bind_plan_matches_construct_params(
    name: str, prepared: Prepared | None, values: dict[str, Any], dialect: Dialect
) -> None:
    compiled = _statement(prepared, dialect)._compiled(dialect)
    assert compiled.binds is not None, f"{name} should take the fast path"
    general = dataclasses.replace(compiled, binds=None)
    assert _comparable(compiled.parameters(values)) == _comparable(general.parameters(values))


def _comparable(params: Any) -> Any:
    """Parameters with psycopg's Json wrappers (equal only by identity) unwrapped."""
    if isinstance(params, dict):
        return {name: getattr(value, "obj", value) for name, value in params.items()}
    return tuple(getattr(value, "obj", value) for value in params)


def test_a_missing_required_value_raises_sqlalchemys_error() -> None:
    compiled = operations._ID_TAKEN._compiled(sqlite.dialect())  # type: ignore[no-untyped-call]
    with pytest.raises(InvalidRequestError, match="A value is required for bind parameter 'id'"):
        compiled.parameters({})


def test_a_literal_in_the_statement_is_bound_from_the_plan() -> None:
    prepared = Prepared(sa.select(settings_table.c.key).where(settings_table.c.key == "fixed").limit(3))
    compiled = prepared._compiled(sqlite.dialect())  # type: ignore[no-untyped-call]
    assert compiled.binds is not None
    assert compiled.parameters({}) == ("fixed", 3, 0)


def test_a_write_through_the_plan_reads_back_through_sqlalchemy(tmp_path: Path) -> None:
    db = DbSettings(
        backend="sqlite",
        url=f"sqlite:///{tmp_path}/p.db",
        sqlite_synchronous="FULL",
        max_batch=8,
        max_value_bytes=65536,
        reconnect_max_s=5.0,
    )
    engine = db_engine.create(db)
    try:
        settings_table.create(engine)
        value = {"nested": [1, "x", None], "ok": True}
        with engine.connect() as conn, conn.begin():
            operations.set_setting(conn, cmd.SetSetting("a.b", value))
            operations.set_setting(conn, cmd.SetSetting("a.b", [2]))
            operations.set_setting(conn, cmd.SetSetting("c", value))
        with engine.connect() as conn:
            rows = {row.key: row for row in conn.execute(sa.select(settings_table))}
        assert rows["a.b"].value == [2]
        assert rows["c"].value == value
        assert rows["c"].updated_at.tzinfo is not None
    finally:
        engine.dispose()


def test_timestamps_convert_right_whether_shared_or_not() -> None:
    compiled = operations._INSERT_USER._compiled(sqlite.dialect())  # type: ignore[no-untyped-call]
    later = datetime(2027, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    first = compiled.parameters(USER_ROW)
    again = compiled.parameters(USER_ROW)  # the same datetime object: remembered
    other = compiled.parameters({**USER_ROW, "created_at": later, "updated_at": later})
    assert first == again
    assert "2026-11-28 03:25:18.123456" in first
    assert "2027-01-02 03:04:05.000006" in other
    assert "2026-11-28 03:25:18.123456" not in other


def test_iso_renders_each_stamp_even_when_remembering_the_last() -> None:
    later = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert iso(STAMP) == "2026-11-28T03:25:18.123456+00:00"
    assert iso(STAMP) == "2026-11-28T03:25:18.123456+00:00"
    assert iso(later) == "2027-01-02T03:04:05.000000+00:00"
    assert iso(None) is None


def test_transaction_time_fixes_utcnow_only_inside_its_block() -> None:
    with transaction_time() as now:
        assert utcnow() is now
        assert utcnow() is now
    assert utcnow() is not now


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_rows_in_column_order_bind_as_their_mappings_do(dialect: Dialect) -> None:
    # execute_rows (the audit records of a batch) takes tuples in column_keys order.
    compiled = operations._INSERT_AUDIT._compiled(dialect)
    assert compiled.columns is not None
    keys = operations._AUDIT_ROW_KEYS
    row = (STAMP, "alice", "admin", "setting_set", '{"key": "k"}', "ok", "")
    assert _comparable(compiled.columns.parameters(row)) == _comparable(
        compiled.parameters(dict(zip(keys, row, strict=True)))
    )


def test_a_statement_with_other_params_than_its_columns_has_no_row_plan() -> None:
    prepared = Prepared(sa.select(settings_table.c.key).where(settings_table.c.key == sa.bindparam("k")), ["other"])
    assert prepared._compiled(sqlite.dialect()).columns is None  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_a_value_converted_once_binds_as_the_plan_converts_it(dialect: Dialect) -> None:
    compiled = operations._INSERT_AUDIT._compiled(dialect)
    assert compiled.columns is not None
    process = next(bind.process for bind in compiled.binds or () if bind.key == "at")
    stamp = STAMP if process is None else process(STAMP)
    row = ("alice", "admin", "setting_set", "{}", "ok", "")
    mapping = dict(zip(operations._AUDIT_ROW_KEYS, (STAMP, *row), strict=True))
    assert _comparable(compiled.columns.arranged((stamp, *row))) == _comparable(compiled.parameters(mapping))
