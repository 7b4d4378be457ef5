"""Issue 13's examples, tried as a new user would, through the real CLIs and a real daemon.

Settings that mean what they say (the configuration read-only and live, application
settings a namespace of their own, strict JSON), roles and other enumerations
checked where they are written, one renderer for both status commands, test
methods only when enabled, a foreground run and ``make run``'s files, ``bin/nua``
outside its environment, Ctrl-D at the password prompt, shell completion.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import termios
from pathlib import Path

import pytest
from daemon_helpers import NUA, REPO, DaemonEnv, wait_until


def one_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


def test_the_configuration_is_shown_with_its_sources_and_never_stored_as_a_setting(daemon: DaemonEnv) -> None:
    started = daemon.cli("start", env=daemon.env(NUA_RPC_PAGE_SIZE="50"))
    assert started.returncode == 0, started.stderr

    shown = daemon.nua("config")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(line.startswith("page_size = 50") and line.endswith("# environment NUA_RPC_PAGE_SIZE") for line in lines)
    assert any(line.startswith("pid_file = ") and line.endswith(f"# {daemon.config}") for line in lines)
    assert any(line.startswith("max_batch = 256") and line.endswith("# default (params.toml)") for line in lines)
    # Not in the database: the application settings are empty, and the configuration's keys are refused there.
    assert json.loads(daemon.nua("setting", "list", "--json").stdout) == []
    refused = one_line(daemon.nua("setting", "set", "zmq.port", "7000"), 1)
    assert "[zmq] is the daemon's configuration" in refused
    assert "nua config" in refused

    # Live: a reload (SIGHUP) that changes the log level shows in the running daemon's configuration.
    daemon.write_config(server={"log_level": "debug"})
    reloaded = daemon.cli("reload")
    assert reloaded.returncode == 0, reloaded.stderr
    daemon.wait_for_log("settings_reloaded", log_level="debug")
    items = json.loads(daemon.nua("config", "--json").stdout)["items"]
    level = next(item for item in items if (item["section"], item["key"]) == ("server", "log_level"))
    assert (level["value"], level["source"]) == ("debug", "re-read at SIGHUP")
    assert daemon.nua("describe", "sys_config").stdout.splitlines()[1] == "role: admin"


def test_the_configuration_masks_the_env_values_of_services_and_jobs(daemon: DaemonEnv) -> None:
    user = {"user": "root"} if os.geteuid() == 0 else {}
    web = {"command": ["sleep", "1000"], "autostart": False, "env": {"API_TOKEN": "svc-s3cret"}, **user}
    backup = {"schedule": "@yearly", "command": ["true"], "env": {"AWS_SECRET": "job-s3cret"}, **user}
    daemon.write_config(services={"web": web}, jobs={"backup": backup})
    daemon.start()
    shown = daemon.nua("config")  # sys_config, rendered as TOML
    as_json = daemon.nua("config", "--json")
    assert shown.returncode == 0, shown.stderr
    for text in (shown.stdout, as_json.stdout):
        assert "svc-s3cret" not in text
        assert "job-s3cret" not in text
    items = {item["section"]: item["value"] for item in json.loads(as_json.stdout)["items"] if item["key"] is None}
    assert items["services.web"]["env"] == {"API_TOKEN": "***"}
    assert items["jobs.backup"]["env"] == {"AWS_SECRET": "***"}
    assert "[services.web.env]" in shown.stdout  # a nested table under its own name, so the text loads back


def test_setting_values_are_strict_json_or_a_string_said_so(daemon: DaemonEnv) -> None:
    daemon.start()
    assert "not JSON" in one_line(daemon.nua("setting", "set", "site.y", "{bad"), 2)
    assert "JSON has no NaN" in one_line(daemon.nua("setting", "set", "site.n", "NaN"), 2)
    assert daemon.nua("setting", "set", "site.y", "{bad", "--string").returncode == 0
    assert json.loads(daemon.nua("setting", "get", "site.y", "--json").stdout)["value"] == "{bad"
    assert daemon.nua("setting", "set", "site.name", '"my cloud"').returncode == 0
    assert daemon.nua("setting", "delete", "site.name").stdout == "1 setting deleted\n"
    assert "not_found" in one_line(daemon.nua("setting", "delete", "site.name"), 1)


def test_roles_and_names_are_checked_where_they_are_written(daemon: DaemonEnv) -> None:
    daemon.start()
    added = subprocess.run(
        [NUA, "--config", str(daemon.config), "user", "add", "alice", "alice@example.com", "--password-stdin"],
        input="pw\n",
        capture_output=True,
        text=True,
        env=daemon.env(),
        check=False,
    )
    assert added.returncode == 0, added.stderr
    assert "user, admin" in daemon.nua("user", "add", "--help").stdout
    assert "reader, operator, admin" in daemon.nua("key", "add", "--help").stdout
    assert "superuser" in one_line(daemon.nua("user", "update", "1", "role", "superuser"), 2)
    # The daemon refuses it too, whoever calls.
    direct = one_line(daemon.nua("call", "user_update", '[1, "role", "superuser"]'), 1)
    assert "invalid role: must be one of user, admin [value=superuser]" in direct
    assert "`nua describe user_update` shows its params" in direct
    assert json.loads(daemon.nua("user", "get", "1", "--json").stdout)["role"] == "user"

    assert "no group with name='nosuch'" in one_line(daemon.nua("group", "delete", "nosuch"), 1)
    assert "no group with name='nosuch'" in one_line(daemon.nua("group", "members", "nosuch"), 1)
    assert daemon.nua("group", "add", "admins").returncode == 0
    assert daemon.nua("group", "add-members", "admins", "1").stdout == "1 of 1 user(s) added to admins\n"
    assert daemon.nua("group", "add-members", "admins", "1").stdout == "0 of 1 user(s) added to admins\n"
    assert daemon.nua("group", "delete", "admins").stdout == "group deleted\n"


def test_both_status_commands_say_the_same_in_the_same_words(daemon: DaemonEnv) -> None:
    pid = daemon.start()
    mine = daemon.nua("status").stdout.splitlines()
    theirs = daemon.cli("status").stdout.splitlines()
    assert mine[0] == f"nua: running (pid {pid})"
    assert theirs[0] == f"nua-orchestrator: running (pid {pid})"

    def facts(lines: list[str]) -> list[str]:
        return [line for line in lines[1:] if not line.lstrip().startswith("uptime:")]

    assert facts(mine) == facts(theirs)
    uptimes = [line.split()[-1] for line in mine + theirs if line.lstrip().startswith("uptime:")]
    assert len(uptimes) == 2
    assert all(uptime[:-1].isdigit() and uptime[-1] in "smhd" for uptime in uptimes)  # 4s, 2m ..., never 25.724


def test_test_methods_are_served_and_listed_only_when_debug_enables_them(daemon: DaemonEnv) -> None:
    daemon.write_config(debug={"test_methods": False})
    daemon.start()
    listed = daemon.nua("methods").stdout
    assert "user_add(user_data: dict[str, Any])  [admin]" in listed
    assert "test_" not in listed
    assert "method_not_found" in one_line(daemon.nua("call", "test_add", "[1, 2]"), 1)


def test_a_foreground_daemon_names_no_log_file_and_a_second_one_fails(daemon: DaemonEnv) -> None:
    process = daemon.spawn("run")
    status = wait_until(lambda: (done := daemon.nua("status")).returncode == 0 and done, what="a foreground daemon")
    assert "log file:    none: it logs to its console (a foreground run)" in status.stdout
    second = daemon.cli("run")
    assert second.returncode == 1
    assert f"already running (pid {process.pid}" in second.stderr
    assert daemon.cli("stop").returncode == 0
    assert process.wait(timeout=30) == 0


def test_make_run_keeps_every_file_under_dot_run_and_bin_nua_finds_it(daemon: DaemonEnv, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "bin", checkout / "bin")
    (checkout / ".venv").symlink_to(REPO / ".venv")
    run_dir = checkout / ".run"
    made = subprocess.run(
        ["make", "-s", "-f", str(REPO / "Makefile"), f"RUN_DIR={run_dir}", str(run_dir / "nua.toml")],
        capture_output=True,
        text=True,
        cwd=checkout,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert run_dir.stat().st_mode & 0o777 == 0o700
    env = daemon.env()
    bin_daemon = str(checkout / "bin" / "nua-orchestrator")
    started = subprocess.run([bin_daemon, "start"], capture_output=True, text=True, env=env, check=False)
    pid = int(started.stdout.split("pid ")[1].split(",")[0]) if started.returncode == 0 else None
    if pid is not None:
        daemon.pids.add(pid)
    assert started.returncode == 0, started.stderr
    try:
        status = subprocess.run(
            [str(checkout / "bin" / "nua"), "status"], capture_output=True, text=True, env=env, check=False
        )
        assert status.returncode == 0, status.stderr
        endpoint = next(line.split()[-1] for line in status.stdout.splitlines() if "endpoint:" in line)
        assert endpoint.startswith("tcp://127.0.0.1:")
        assert not endpoint.endswith(":5001")  # any free port: never an installed daemon's
        names = {path.name for path in run_dir.iterdir()}
        assert {"nua.toml", "nua.db", "nua-orchestrator.pid", "nua-orchestrator.runtime.json", "keys"} <= names
        assert f"log file:    {run_dir}/nua-orchestrator.log" in status.stdout
    finally:
        stopped = subprocess.run([bin_daemon, "stop"], capture_output=True, text=True, env=env, check=False)
    assert stopped.returncode == 0, stopped.stderr


def test_bin_nua_without_its_environment_says_how_to_install(tmp_path: Path) -> None:
    shutil.copytree(REPO / "bin", tmp_path / "bin")
    for name in ("nua", "nua-orchestrator"):
        done = subprocess.run([str(tmp_path / "bin" / name), "--help"], capture_output=True, text=True, check=False)
        assert done.returncode == 5
        assert done.stderr.count("\n") == 1
        assert "make run" in done.stderr
        assert "pip install" in done.stderr


def test_ctrl_d_at_the_password_prompt_is_one_line(daemon: DaemonEnv) -> None:
    daemon.start()
    controller, terminal = os.openpty()

    def take_terminal() -> None:  # the child's controlling terminal, where getpass prompts
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [NUA, "--config", str(daemon.config), "user", "add", "bob", "bob@example.org"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=daemon.env(),
        start_new_session=True,
        preexec_fn=take_terminal,  # noqa: PLW1509 - only the ioctl, in a test
    )
    os.close(terminal)
    output = b""
    try:
        while b"Password:" not in output:
            assert select.select([controller], [], [], 30)[0], output
            output += os.read(controller, 1024)
        os.write(controller, b"\x04")
        assert process.wait(timeout=30) == 2
        while select.select([controller], [], [], 0.5)[0]:
            try:
                chunk = os.read(controller, 1024)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    said = output.decode().split("Password:", 1)[1]
    assert "Traceback" not in said
    assert "nua: no password given (end of input): nothing was changed" in said
    assert [line.strip() for line in said.splitlines() if line.strip()] == [
        "nua: no password given (end of input): nothing was changed"
    ]


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o"), ("zsh", "#compdef nua")])
def test_shell_completion_scripts_cover_the_commands(shell: str, marker: str) -> None:
    done = subprocess.run([NUA, "completion", shell], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout
    for word in ("user", "setting", "service", "audit", "delete-all", "--password-stdin"):
        assert word in done.stdout


@pytest.mark.parametrize(
    ("section", "values", "said"),
    [
        ("db", {"url": "sqlite:///relative.db"}, "[db] url must name its SQLite file by an absolute path"),
        ("db", {"url": "sqlite:////proc/nua/nua.db"}, "cannot open the database file /proc/nua/nua.db ([db] url)"),
        ("server", {"log_file": "/proc/nua.log"}, "cannot write the log file /proc/nua.log ([server] log_file)"),
    ],
)
def test_a_database_or_log_file_the_daemon_cannot_use_is_a_setting_to_fix(
    daemon: DaemonEnv, section: str, values: dict[str, str], said: str
) -> None:
    daemon.write_config(**{section: values})
    done = daemon.cli("start")
    assert said in one_line(done, 6)
    assert "See the log" not in done.stderr
    assert daemon.pid() is None
