"""Fixtures of the data-layer tests: a database per test on SQLite and, when asked, PostgreSQL.

Set ``NUA_TEST_PG_URL`` (CI does) to run every backend-parametrised test against
PostgreSQL too. Each such test gets its own schema (``CREATE SCHEMA nua_test_<random>``
and a ``search_path`` in the URL), dropped afterwards, so parallel runs never meet.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
import sqlalchemy as sa
from dbkit import ExitLog, Writers, make_settings

from nua.actors.db_reader import DbReader
from nua.actors.supervised import ChildContext
from nua.model import commands as cmd
from nua.settings import Settings

PG_URL_ENV = "NUA_TEST_PG_URL"


def pg_schema_url(base_url: str, schema: str) -> str:
    """``base_url`` with every connection's search_path set to ``schema``."""
    url = sa.make_url(base_url)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not os.environ.get(PG_URL_ENV):
        pytest.skip(
            f"PostgreSQL suite not run: set {PG_URL_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/nua.db"
        return
    base = os.environ[PG_URL_ENV]
    schema = f"nua_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        yield pg_schema_url(base, schema)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path)


@pytest.fixture
def writers(settings: Settings) -> Iterator[Writers]:
    started = Writers(settings)
    yield started
    started.stop_all()


@pytest.fixture
def writer(writers: Writers) -> pykka.ActorRef[Any]:
    return writers.start()


@pytest.fixture
def reader(writer: pykka.ActorRef[Any], settings: Settings) -> Iterator[pykka.ActorRef[Any]]:
    """A DB reader beside ``writer``, on the same database."""
    writer.ask(cmd.CountUsers())  # the writer created the schema
    ref = DbReader.start(ChildContext("db_reader", 1, ExitLog()), settings)
    yield ref
    ref.stop(block=True, timeout=10)
