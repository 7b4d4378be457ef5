"""The audit trail on a real daemon, read with the real ``nua audit``; ``[audit] keep_days`` checked at start.

Until the dispatcher enters the audit context itself, calls are made through the
RPC test plugin's ``audited_call``, which does what the dispatcher will do.
"""

from __future__ import annotations

import json
import os

import pytest
from daemon_helpers import REPO, DaemonEnv, wait_until

from nua.rpc.client import Client
from nua.rpc.errors import NotFoundError

PLUGINS = REPO / "tests" / "rpc"
SECRETS = ("s3cret-first", "s3cret-second", "s3cret-third", "scrypt$")


def test_every_audited_change_is_listed_by_nua_audit_and_logged_once(daemon: DaemonEnv) -> None:
    daemon.write_config(rpc={"plugins": ["rpc_test_plugin"]}, security={"scrypt_n": 1024})
    started = daemon.cli("start", env=daemon.env(PYTHONPATH=f"{REPO}{os.pathsep}{PLUGINS}"))
    assert started.returncode == 0, started.stderr
    daemon.remember_daemon()

    with Client(daemon.endpoint, timeout=10) as client:
        user = client.call(
            "audited_call",
            "alice",
            "admin",
            "user_add",
            [{"username": "c", "email": "c@x.org", "password": "s3cret-first"}],
        )
        client.call("audited_call", "alice", "admin", "user_update", [user["id"], "password", "s3cret-second"])
        client.call("audited_call", "bob", "operator", "setting_set", {"key": "mail.token", "value": "s3cret-third"})
        with pytest.raises(NotFoundError):  # rolled back: no record
            client.call("audited_call", "bob", "operator", "setting_delete", ["missing"])
        client.call("audited_call", "bob", "operator", "user_count", [])  # a read: no record
        client.call("audited_deny", "eve", "reader", "user_delete_all", "admin")
        client.call("setting_set", "not.audited", 1)  # outside the context

    listed = daemon.nua("audit", "--json")
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    assert [(r["who"], r["role"], r["method"], r["outcome"]) for r in records] == [
        ("eve", "reader", "user_delete_all", "denied"),
        ("bob", "operator", "setting_set", "ok"),
        ("alice", "admin", "user_update", "ok"),
        ("alice", "admin", "user_add", "ok"),
    ]
    assert records[0]["detail"] == "needs role admin"
    assert records[1]["params"] == {"key": "mail.token", "value": "***"}
    assert records[2]["params"] == {"id": user["id"], "key": "password", "value": "***"}
    table = daemon.nua("audit", "--who", "alice", "--method", "user_add")
    assert table.returncode == 0, table.stderr
    assert len(table.stdout.splitlines()) == 2
    assert "user_add" in table.stdout
    assert "***" in table.stdout

    def audit_lines() -> list[dict[str, object]]:
        return [e for e in daemon.log_events() if e.get("event") in ("rpc_audited", "rpc_denied")]

    logged = wait_until(lambda: len(audit_lines()) == 4 and audit_lines(), what="one log line per audited call")
    assert [(e["event"], e["who"], e["method"]) for e in logged] == [
        ("rpc_audited", "alice", "user_add"),
        ("rpc_audited", "alice", "user_update"),
        ("rpc_audited", "bob", "setting_set"),
        ("rpc_denied", "eve", "user_delete_all"),
    ]
    everything = listed.stdout + table.stdout + daemon.log_file.read_text(encoding="utf-8")
    for secret in SECRETS:
        assert secret not in everything

    stopped = daemon.cli("stop")
    assert stopped.returncode == 0, stopped.stderr


@pytest.mark.parametrize("keep_days", [-1, 36501])
def test_a_bad_keep_days_stops_the_start_with_one_line_and_exit_6(daemon: DaemonEnv, keep_days: int) -> None:
    daemon.write_config(audit={"keep_days": keep_days})
    result = daemon.cli("start")
    assert result.returncode == 6, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert str(daemon.config) in line
    assert f"[audit] keep_days must be from 0 to 36500, got {keep_days}" in line
    assert not daemon.pid_file.exists()
