"""The audit trail on a real daemon, read with the real ``nua audit``; ``[audit] keep_days`` checked at start.

The calls are real RPC calls: the dispatcher enters each state-changing call's
audit context itself. Denied calls (roles) are audited in test_daemon_auth.
"""

from __future__ import annotations

import json

import pytest
from daemon_helpers import DaemonEnv, wait_until

from nua.rpc.client import Client
from nua.rpc.errors import ConflictError, NotFoundError

SECRETS = ("s3cret-first", "s3cret-second", "s3cret-third", "scrypt$")
WHO = "(auth off)"  # every caller, with [zmq] auth = "none"


def test_each_change_has_one_record_and_a_failed_or_read_call_none(daemon: DaemonEnv) -> None:
    daemon.write_config(security={"scrypt_n": 1024})
    daemon.start()

    with Client(daemon.endpoint, timeout=10) as client:
        user = client.call("user_add", {"username": "c", "email": "c@x.org", "password": "s3cret-first"})
        client.call("user_update", user["id"], "password", "s3cret-second")
        client.call("setting_set", key="mail.token", value="s3cret-third")
        with pytest.raises(NotFoundError):  # rolled back: no record
            client.call("setting_delete", "missing")
        with pytest.raises(ConflictError):  # rolled back: no record
            client.call("user_add", {"username": "c", "email": "d@x.org", "password": "s3cret-first"})
        client.call("user_count")  # a read: no record
        client.call("group_add", "ops")
        client.call("group_add_members", "ops", [user["id"]])
        client.call("group_remove_members", "ops", [user["id"]])
        client.call("group_delete", "ops")
        client.call("setting_delete", "mail.token")
        client.call("user_delete", [user["id"]])
        client.call("user_delete_all")

    listed = daemon.nua("audit", "--json")
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    methods = [
        "user_delete_all",
        "user_delete",
        "setting_delete",
        "group_delete",
        "group_remove_members",
        "group_add_members",
        "group_add",
        "setting_set",
        "user_update",
        "user_add",
    ]
    assert [(r["who"], r["role"], r["method"], r["outcome"]) for r in records] == [
        (WHO, "admin", method, "ok") for method in methods
    ]
    assert records[-3]["params"] == {"key": "mail.token", "value": "***"}
    assert records[-2]["params"] == {"id": user["id"], "key": "password", "value": "***"}
    table = daemon.nua("audit", "--method", "user_add")
    assert table.returncode == 0, table.stderr
    assert len(table.stdout.splitlines()) == 2  # a header and the one record
    assert "***" in table.stdout

    def call_lines() -> list[dict[str, object]]:
        return [e for e in daemon.log_events() if e.get("event") == "rpc_call"]

    # One line per call of a changing method, failed ones too (in the order answered); none for the read.
    answered = [*reversed(methods[-3:]), "setting_delete", "user_add", *reversed(methods[:-3])]
    logged = wait_until(lambda: len(call_lines()) == len(answered) and call_lines(), what="a log line per call")
    assert [(e["who"], e["role"], e["method"]) for e in logged] == [(WHO, "admin", m) for m in answered]
    outcomes = [(e["outcome"], e.get("code"), e.get("error")) for e in logged]
    assert outcomes[3:5] == [("error", -32001, "not_found"), ("error", -32002, "conflict")]
    assert {o for i, o in enumerate(outcomes) if i not in (3, 4)} == {("ok", None, None)}
    assert all(isinstance(e["duration_ms"], float) and e["duration_ms"] >= 0 for e in logged)
    assert logged[4]["field"] in {"username", "email"}  # what failed is named, not the value sent
    everything = listed.stdout + table.stdout + daemon.log_file.read_text(encoding="utf-8")
    for secret in SECRETS:
        assert secret not in everything


@pytest.mark.parametrize("keep_days", [-1, 36501])
def test_a_bad_keep_days_stops_the_start_with_one_line_and_exit_6(daemon: DaemonEnv, keep_days: int) -> None:
    daemon.write_config(audit={"keep_days": keep_days})
    result = daemon.cli("start")
    assert result.returncode == 6, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert str(daemon.config) in line
    assert f"[audit] keep_days must be from 0 to 36500, got {keep_days}" in line
    assert not daemon.pid_file.exists()
