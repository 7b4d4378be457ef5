"""No secret in any output: a real daemon on a PostgreSQL URL carrying a password, failing password writes.

The URL carries ``?password=...`` in its query (the test server trusts local
connections and ignores it). Password writes are then made to fail inside the
database (a trigger, then a CHECK constraint, whose error DETAIL quotes the whole
row, hash included), and every output is scanned: replies, ``sys_status``, ``sys_config``,
the whole setting list, ``nua-orchestrator status`` and the
log file.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from daemon_helpers import WAIT_S, DaemonEnv

from nua.rpc.cli import every_page
from nua.rpc.client import Client
from nua.rpc.errors import RpcError

PG_URL_ENV = "NUA_TEST_PG_URL"
SECRET = f"SeCrEt{secrets.token_hex(8)}"
PASSWORDS = ("first-pw-for-alice", "second-pw-for-alice", "third-pw-for-alice", "pw-for-bob")


@pytest.fixture
def pg_schema() -> Iterator[tuple[sa.Engine, str]]:
    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip(f"PostgreSQL suite not run: set {PG_URL_ENV}")
    schema = f"nua_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield admin, schema
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def failing_call(client: Client, method: str, *params: Any) -> str:
    with pytest.raises(RpcError) as caught:
        client.call(method, *params)
    return json.dumps(caught.value.to_dict())


def test_no_password_or_hash_in_any_output(daemon: DaemonEnv, pg_schema: tuple[sa.Engine, str]) -> None:
    admin, schema = pg_schema
    url = sa.make_url(os.environ[PG_URL_ENV]).update_query_dict(
        {"options": f"-csearch_path={schema}", "password": SECRET, "sslpassword": SECRET}
    )
    daemon.write_config(
        db={"url": url.render_as_string(hide_password=False)},
        security={"scrypt_n": 16, "scrypt_r": 1, "scrypt_p": 1},
        server={"log_level": "debug"},
    )
    daemon.start()
    outputs: list[str] = []
    with Client(daemon.endpoint, timeout=WAIT_S) as client:
        user = client.call("user_add", {"username": "alice", "email": "alice@example.org", "password": PASSWORDS[0]})
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f"CREATE FUNCTION {schema}.refuse() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RAISE EXCEPTION 'password changes refused by the test'; END $$"
            )
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE UPDATE OF password_hash ON {schema}.users"
                f" FOR EACH ROW EXECUTE FUNCTION {schema}.refuse()"
            )
        outputs.append(failing_call(client, "user_update", user["id"], "password", PASSWORDS[1]))
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP TRIGGER refuse ON {schema}.users")
            # A violated CHECK makes PostgreSQL's DETAIL quote the failing row: the new hash.
            conn.exec_driver_sql(
                f"ALTER TABLE {schema}.users ADD CONSTRAINT short_hash CHECK (length(password_hash) < 16) NOT VALID"
            )
        outputs.append(failing_call(client, "user_update", user["id"], "password", PASSWORDS[2]))
        outputs.append(
            failing_call(client, "user_add", {"username": "bob", "email": "bob@example.org", "password": PASSWORDS[3]})
        )
        status = client.call("sys_status")
        outputs.append(json.dumps(status))
        shown_url = status["db_url"]
        outputs.append(json.dumps(every_page(client, "setting_list")))
        outputs.append(json.dumps(client.call("user_list")))
    for args in (("status",), ("status", "--json")):
        result = daemon.cli(*args)
        assert result.returncode == 0, result.stderr
        outputs += [result.stdout, result.stderr]
    log = daemon.log_file.read_text(encoding="utf-8")

    # The paths were taken: the errors reached the log, the URL is shown masked.
    assert "password changes refused by the test" in log
    assert "short_hash" in log
    assert "password=***" in shown_url
    assert schema in shown_url
    for text in (*outputs, log):
        assert SECRET not in text
        assert "scrypt$" not in text
        for password in PASSWORDS:
            assert password not in text
