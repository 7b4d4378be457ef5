"""Cron jobs on real daemons, through the real CLI: add, run, history, pause, keys' roles, kill -9 mid-run."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import DaemonEnv, is_alive, wait_until

from nua import curve_keys, runtime
from nua.rpc.client import Client, ConnectionRefusedByDaemonError
from nua.rpc.errors import FORBIDDEN, INVALID_PARAMS, RpcError

USER = ["--user", "root"] if os.geteuid() == 0 else []


def nua_json(daemon: DaemonEnv, *args: str) -> Any:
    done = daemon.nua(*args, "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


def start_curve(daemon: DaemonEnv) -> tuple[str, str | None]:
    """Start ``daemon`` with CURVE authentication (on top of its written config); its endpoint and server key."""
    daemon.write_config(zmq={"auth": "curve"})
    daemon.start()
    record = runtime.read(runtime.record_path(daemon.pid_file))
    assert record is not None
    return record.endpoint or daemon.endpoint, record.server_key


def add_key(daemon: DaemonEnv, name: str, role: str) -> curve_keys.KeyPair:
    """A new key pair, registered as ``name`` with ``role`` by the CLI."""
    pair = curve_keys.generate()
    done = daemon.cli("keys", "add", name, "--role", role, f"--public-key={pair.public}")
    assert done.returncode == 0, done.stderr
    return pair


def history(daemon: DaemonEnv, name: str) -> list[dict[str, Any]]:
    return list(nua_json(daemon, "cron", "history", name))


def test_a_command_job_added_with_the_cli_runs_on_schedule_and_shows_in_history(
    daemon: DaemonEnv, tmp_path: Path
) -> None:
    daemon.start()
    marks = tmp_path / "marks"
    command = f"{sys.executable} -c \"import sys; open(sys.argv[1], 'a').write('x'); print('backed up')\" {marks}"
    added = daemon.nua("cron", "add", "backup", "every 1s", "--command", command, *USER)
    assert added.returncode == 0, added.stderr + added.stdout
    assert added.stdout.startswith("backup: next ")
    wait_until(lambda: len([r for r in history(daemon, "backup") if r["status"] == "ok"]) >= 2, what="two runs")
    runs = history(daemon, "backup")
    assert runs[0]["id"] > runs[-1]["id"]  # newest first
    ok = [r for r in runs if r["status"] == "ok"]
    assert all(r["exit_code"] == 0 and r["detail"] == "backed up\n" for r in ok)
    assert marks.read_text().count("x") >= 2
    listed = daemon.nua("cron", "list")
    assert listed.returncode == 0
    assert "backup" in listed.stdout
    assert "every 1s" in listed.stdout
    paused = nua_json(daemon, "cron", "pause", "backup")
    assert (paused["paused"], paused["next_fire_at"]) == (True, None)
    # Paused, it starts no run: once the last one started has ended, the newest is done.
    wait_until(lambda: history(daemon, "backup")[0]["status"] != "running", what="the last run's end")
    table = daemon.nua("cron", "history", "backup", "--limit", "1")
    assert table.returncode == 0
    assert "ok" in table.stdout
    removed = daemon.nua("cron", "remove", "backup")
    assert removed.returncode == 0
    gone = daemon.nua("cron", "history", "backup")
    assert gone.returncode == 0
    assert gone.stdout.strip() == "(none)"


def test_bad_jobs_are_refused_with_the_key_and_the_right_exit(daemon: DaemonEnv) -> None:
    daemon.start()
    no_action = daemon.nua("cron", "add", "x", "* * * * *")
    assert no_action.returncode == 2
    assert "--call" in no_action.stderr
    bad_expression = daemon.nua("cron", "add", "x", "* * *", "--call", "user_count")
    assert bad_expression.returncode == 1
    assert "5 fields" in bad_expression.stderr
    no_method = daemon.nua("cron", "add", "x", "@daily", "--call", "no_such_method")
    assert no_method.returncode == 1
    assert "no_such_method" in no_method.stderr
    bad_params = daemon.nua("cron", "add", "x", "@daily", "--call", "user_get", '["one"]')
    assert bad_params.returncode == 1
    assert "params" in bad_params.stderr
    assert daemon.nua("cron", "run-now", "nope").returncode == 1


def test_a_job_in_the_settings_file_is_checked_by_meaning(daemon: DaemonEnv) -> None:
    daemon.write_config(jobs={"broken": {"schedule": "every 5 weeks", "call": "user_count"}})
    started = daemon.cli("start")
    assert started.returncode == 6
    assert "[jobs.broken] schedule" in started.stderr


def test_a_call_job_runs_with_the_role_of_the_key_that_added_it_and_is_audited(daemon: DaemonEnv) -> None:
    endpoint, server = start_curve(daemon)
    operator = add_key(daemon, "ops", "operator")
    with Client(endpoint, 15, server_key=server, client_key=operator) as client:
        # An operator cannot have a job do what it may not: user_delete_all needs admin.
        with pytest.raises(RpcError) as refused:
            client.call("cron_add", "wipe", {"schedule": "@daily", "call": "user_delete_all"})
        assert refused.value.code == INVALID_PARAMS
        assert "admin" in refused.value.message
        added = client.call("cron_add", "mark", {"schedule": "@yearly", "call": "setting_set", "params": ["k", 1]})
        assert (added["owner"], added["owner_role"]) == ("ops", "operator")
        run = client.call("cron_run_now", "mark")["run"]

        def ended() -> dict[str, Any] | None:
            runs = client.call("cron_history", "mark")["items"]
            return next((r for r in runs if r["id"] == run and r["status"] != "running"), None)

        finished = wait_until(ended, what="the run's end")
    assert finished["status"] == "ok", finished
    owner_pair = curve_keys.read(daemon.client_key)
    with Client(endpoint, 15, server_key=server, client_key=owner_pair) as admin:
        records = admin.call("audit_list", method="setting_set")["items"]
    assert [(r["who"], r["role"], r["params"]) for r in records] == [("ops", "operator", {"key": "k", "value": 1})]


def run_to_end(client: Client, name: str) -> dict[str, Any]:
    """Run job ``name`` now and wait for the run's end (its history row)."""
    run = client.call("cron_run_now", name)["run"]

    def ended() -> dict[str, Any] | None:
        runs = client.call("cron_history", name)["items"]
        return next((r for r in runs if r["id"] == run and r["status"] != "running"), None)

    return dict(wait_until(ended, what="the run's end"))


def test_a_job_runs_with_its_keys_current_role_and_a_jobs_key_remove_locks_the_key_out(daemon: DaemonEnv) -> None:
    endpoint, server = start_curve(daemon)
    operator, other = add_key(daemon, "ops", "operator"), add_key(daemon, "other", "operator")
    with Client(endpoint, 15, server_key=server, client_key=operator) as client:
        client.call("cron_add", "mark", {"schedule": "@yearly", "call": "setting_set", "params": ["k", 1]})
    owner_pair = curve_keys.read(daemon.client_key)
    with Client(endpoint, 15, server_key=server, client_key=owner_pair) as admin:
        admin.call("key_remove", "ops")
        failed = run_to_end(admin, "mark")
        assert failed["status"] == "failed"
        assert "no longer registered" in failed["detail"]
        (denied,) = admin.call("audit_list", method="setting_set")["items"]
        assert (denied["who"], denied["outcome"]) == ("ops", "denied")
        admin.call("cron_add", "rm", {"schedule": "@yearly", "call": "key_remove", "params": ["other"]})
        assert run_to_end(admin, "rm")["status"] == "ok"
    with pytest.raises(ConnectionRefusedByDaemonError), Client(endpoint, 15, server_key=server, client_key=other) as c:
        c.call("setting_get", "k")  # the gateway refuses the key the job removed


def test_an_operator_cannot_run_now_an_admins_job_calling_an_admin_method(daemon: DaemonEnv) -> None:
    endpoint, server = start_curve(daemon)
    operator = add_key(daemon, "ops", "operator")
    with Client(endpoint, 15, server_key=server, client_key=curve_keys.read(daemon.client_key)) as admin:
        admin.call("cron_add", "adm", {"schedule": "@yearly", "call": "key_list"})
    with Client(endpoint, 15, server_key=server, client_key=operator) as client:
        with pytest.raises(RpcError) as refused:
            client.call("cron_run_now", "adm")
        assert refused.value.code == FORBIDDEN
        assert "needs the admin role" in refused.value.message
        assert client.call("cron_history", "adm")["items"] == []


def test_readers_and_the_audit_trail_never_see_a_jobs_secrets(daemon: DaemonEnv) -> None:
    command = [sys.executable, "-c", "print(1)"]
    file_job = {"schedule": "@yearly", "command": command, "env": {"DB_PASSWORD": "FILESECRET"}}
    daemon.write_config(jobs={"filejob": {**file_job, **({"user": "root"} if USER else {})}})
    endpoint, server = start_curve(daemon)
    with Client(endpoint, 15, server_key=server, client_key=curve_keys.read(daemon.client_key)) as admin:
        admin.call("user_add", {"username": "bob", "email": "b@x.io", "password": "initialpw1234"})
        pw = {"schedule": "@yearly", "call": "user_update", "params": [1, "password", "HUNTER2-SECRET"]}
        admin.call("cron_add", "pw", pw)
        env = {"schedule": "@yearly", "command": command, "env": {"API_TOKEN": "ENVSECRET"}}
        admin.call("cron_add", "envjob", {**env, **({"user": "root"} if USER else {})})
        admin.call("cron_update", "pw", {**pw, "params": [1, "password", "UPDATED-SECRET"]})
        audit = json.dumps(admin.call("audit_list")["items"])
        admin.call("cron_add", "keys", {"schedule": "@yearly", "call": "key_list"})
        finished = run_to_end(admin, "keys")
    assert "SECRET" not in audit
    assert "cron_update" in audit
    assert finished["status"] == "ok"
    assert json.loads(finished["detail"])["type"] == "object"  # an admin method's result: its type and size only
    assert "public_key" not in finished["detail"]
    reader = add_key(daemon, "rd", "reader")
    with Client(endpoint, 15, server_key=server, client_key=reader) as client:
        listed = client.call("cron_list")["items"]
        shown = {job["name"]: job["config"] for job in listed}
        got = client.call("cron_get", "pw")["config"]
        with pytest.raises(RpcError) as refused:  # a reader may not add: recorded denied, the secret masked
            client.call("cron_add", "pw2", {**pw, "params": [1, "password", "DENIED-SECRET"]})
        assert refused.value.code == FORBIDDEN
    with Client(endpoint, 15, server_key=server, client_key=curve_keys.read(daemon.client_key)) as admin:
        (denied,) = admin.call("audit_list", method="cron_add", who="rd")["items"]
    assert denied["outcome"] == "denied"
    assert denied["params"]["config"]["params"] == {"id": 1, "key": "password", "value": "***"}
    assert "SECRET" not in json.dumps(listed) + json.dumps(got)
    assert shown["envjob"]["env"] == {"API_TOKEN": "***"}
    assert shown["filejob"]["env"] == {"DB_PASSWORD": "***"}
    assert got["params"] == {"id": 1, "key": "password", "value": "***"}


def test_a_run_killed_with_the_daemon_is_interrupted_and_not_run_again(daemon: DaemonEnv, tmp_path: Path) -> None:
    started = tmp_path / "started"
    script = f"import os, pathlib, time; pathlib.Path({str(started)!r}).write_text(str(os.getpid())); time.sleep(600)"
    job: dict[str, Any] = {"schedule": "@yearly", "command": [sys.executable, "-c", script], "timeout_s": 900}
    if os.geteuid() == 0:
        job["user"] = "root"
    daemon.write_config(jobs={"long": job})
    pid = daemon.start()
    run = nua_json(daemon, "cron", "run-now", "long")["run"]
    wait_until(lambda: started.exists() and started.read_text(), what="the job's process to start")
    job_pid = int(started.read_text())
    os.kill(pid, signal.SIGKILL)
    daemon.wait_gone(pid)
    daemon.start()
    runs = history(daemon, "long")
    assert [(r["id"], r["status"]) for r in runs] == [(run, "interrupted")]
    assert "ended before it did" in runs[0]["detail"]
    # What the killed daemon's run left running was ended by the next one (found by its mark).
    wait_until(lambda: not is_alive(job_pid), what="the killed daemon's job process to be ended")
