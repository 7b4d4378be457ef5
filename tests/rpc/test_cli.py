"""The real ``bin/nua`` in a subprocess against a gateway in this process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from rpc_helpers import Tree

from nua import runtime
from nua.pidfile import PidFile

NUA = str(Path(__file__).resolve().parents[2] / "bin" / "nua")


def nua(
    tree: Tree | None, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    endpoint = ["--endpoint", tree.endpoint] if tree is not None else []
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUA_")}
    return subprocess.run(
        [NUA, *args, *endpoint],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean, **(env or {})},
        check=False,
    )


def test_user_lifecycle_with_tables_and_json(tree: Tree) -> None:
    added = nua(
        tree, "user", "add", "carol", "carol@example.org", "--display-name", "Carol", "--password-stdin", stdin="pw\n"
    )
    assert added.returncode == 0, added.stderr
    assert "carol@example.org" in added.stdout
    assert added.stdout.splitlines()[0].split() == ["id", "username", "email", "role", "display_name", "created_at"]
    listed = nua(tree, "user", "list", "--json")
    assert listed.returncode == 0
    assert [u["username"] for u in json.loads(listed.stdout)] == ["carol"]
    assert nua(tree, "user", "count").stdout.strip() == "1"
    updated = nua(tree, "user", "update", "1", "role", "admin", "--json")
    assert json.loads(updated.stdout)["role"] == "admin"
    assert nua(tree, "user", "update", "1", "password", "--password-stdin", stdin="new\n").returncode == 0
    assert nua(tree, "user", "delete", "1").returncode == 0
    assert nua(tree, "user", "count", "--json").stdout.strip() == "0"


def test_rpc_error_exits_1_with_one_line(tree: Tree) -> None:
    nua(tree, "user", "add", "dan", "dan@example.org", "--password-stdin", stdin="pw\n")
    again = nua(tree, "user", "add", "dan", "dan2@example.org", "--password-stdin", stdin="pw\n")
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1
    assert "conflict (-32002): user username 'dan' is already taken" in again.stderr
    assert "[" not in again.stderr  # the error's data repeats the message: not printed twice


def test_an_invalid_params_error_says_it_once_and_names_the_method_to_describe(tree: Tree) -> None:
    bad = nua(tree, "user", "add", "erin", "not-an-address", "--password-stdin", stdin="pw\n")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1
    assert bad.stderr.count("an address of the form name@domain") == 1
    assert bad.stderr.rstrip().endswith("`nua describe user_add` shows its params")
    assert "METHOD" not in bad.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("bogus",),
        ("user", "update", "1", "password", "secret-on-argv"),
        ("user", "delete-all"),
        ("call", "test_add", "{not json"),
        ("user", "delete", "x"),
        ("setting", "set", "site.y", "{bad"),
        ("setting", "set", "site.n", "NaN"),
        ("setting", "set", "site.n", "[Infinity]"),
        ("user", "update", "1", "role", "superuser"),
        ("user", "add", "x", "x@example.org", "--role", "superuser", "--password-stdin"),
        ("key", "add", "bob", "--public-key=K", "--role", "root"),
        ("--timeout", "nan", "status"),
        ("--timeout", "inf", "status"),
        ("--timeout", "0", "status"),
        ("--timeout", "-1", "status"),
        ("--endpoint", "foo", "status"),
        ("--endpoint", "tcp://127.0.0.1:abc", "status"),
        ("--endpoint", "tcp://127.0.0.1:0", "status"),
        ("service", "logs", "web", "-n", "0"),
    ],
)
def test_usage_errors_exit_2_in_one_line_saying_what_is_wrong(tree: Tree, args: tuple[str, ...]) -> None:
    done = nua(tree, *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "see nua --help)" not in done.stderr
    assert "secret-on-argv" not in done.stderr


def test_password_needs_a_terminal_or_stdin(tree: Tree) -> None:
    done = nua(tree, "user", "add", "eve", "eve@example.org")  # stdin is a pipe, no --password-stdin
    assert done.returncode == 2
    assert "--password-stdin" in done.stderr


def test_unreachable_exits_3_saying_how_to_start(tmp_path: Path) -> None:
    done = nua(None, "user", "count", "--endpoint", f"ipc://{tmp_path}/none.sock", "--timeout", "0.3")
    assert done.returncode == 3
    assert "nua-orchestrator start" in done.stderr
    assert done.stderr.count("\n") == 1


def test_options_before_the_command_are_not_overridden(tree: Tree) -> None:
    done = nua(None, "--endpoint", tree.endpoint, "--json", "call", "test_add", "[1, 1]")
    assert json.loads(done.stdout) == 2
    with socket.socket() as silent:  # accepts TCP connections, never speaks ZeroMQ
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        slow = nua(None, "--timeout", "0.3", "--endpoint", endpoint, "call", "test_add", "[1, 1]")
    assert slow.returncode == 3
    assert "within 0.3 s" in slow.stderr


def test_endpoint_from_the_daemons_settings(tree: Tree, tmp_path: Path) -> None:
    # A pid file of our own: a daemon running on this machine with the default one
    # would otherwise be found through its runtime record.
    pid_file = tmp_path / "client-run" / "nua.pid"
    config = tmp_path / "client.toml"
    config.write_text(f'[server]\npid_file = "{pid_file}"\n[zmq]\nendpoint = "{tree.endpoint}"\n', encoding="utf-8")
    assert nua(None, "call", "test_add", "[2, 2]", env={"NUA_CONFIG": str(config)}).stdout.strip() == "4"
    assert nua(None, "call", "test_add", "[2, 3]", "--config", str(config)).stdout.strip() == "5"
    only_env = {"NUA_ZMQ_ENDPOINT": tree.endpoint, "NUA_SERVER_PID_FILE": str(pid_file)}
    assert nua(None, "call", "test_add", "[2, 4]", env=only_env).stdout.strip() == "6"


def test_the_runtime_record_wins_over_the_settings(tree: Tree, tmp_path: Path) -> None:
    # This process plays the daemon: it holds the pid lock and wrote the record.
    pid_file = PidFile(tmp_path / "daemon-run" / "nua.pid")
    pid_file.path.parent.mkdir(mode=0o700)
    pid_file.acquire()
    try:
        record = runtime.Record(
            pid=os.getpid(),
            started_at=1.0,
            version="0.1.0",
            endpoint=tree.endpoint,
            settings_endpoint=tree.endpoint,
            config_file=None,
        )
        runtime.write(runtime.record_path(pid_file.path), record)
        nowhere = f"ipc://{tmp_path}/nobody.sock"
        env = {"NUA_SERVER_PID_FILE": str(pid_file.path), "NUA_ZMQ_ENDPOINT": nowhere}
        found = nua(None, "call", "test_add", "[1, 1]", env=env)
        assert (found.returncode, found.stdout.strip(), found.stderr) == (0, "2", "")

        runtime.record_path(pid_file.path).write_text("{garbage", encoding="utf-8")
        fallen_back = nua(None, "call", "test_add", "[1, 1]", "--timeout", "1", env=env)
        assert fallen_back.returncode == 3
        warning, unreachable = fallen_back.stderr.splitlines()
        assert warning.startswith(f"nua: warning: ignoring the runtime record {runtime.record_path(pid_file.path)}")
        assert warning.endswith(f"using the settings' endpoint {nowhere}")
        assert nowhere in unreachable

        given = nua(tree, "call", "test_add", "[1, 2]", env=env)  # --endpoint: neither record nor settings
        assert (given.returncode, given.stdout.strip(), given.stderr) == (0, "3", "")
    finally:
        pid_file.release()


def test_methods_describe_call_status_groups_settings(tree: Tree) -> None:
    methods = nua(tree, "methods").stdout.splitlines()
    assert "user_add(user_data: dict[str, Any])  [admin]" in methods
    assert methods[methods.index("user_add(user_data: dict[str, Any])  [admin]") + 1].startswith("    Add a user from")
    assert 'group_add(name: str, source: str = "")  [admin]' in methods
    assert "test_add(a: float, b: float)  [reader]" in methods  # [debug] test_methods = true here
    assert nua(tree, "describe", "test_add").stdout.startswith("test_add(a: float, b: float)\nrole: reader")
    assert nua(tree, "call", "test_add", '{"a": 1, "b": 2}').stdout.strip() == "3"
    assert nua(tree, "call", "test_divide", "[1, 0]").returncode == 1
    status = nua(tree, "status")
    assert "gateway: running, restarts 0" in status.stdout
    assert json.loads(nua(tree, "status", "--json").stdout)["tree"]["id"] == "root"
    assert nua(tree, "group", "add", "ops").returncode == 0
    assert "ops" in nua(tree, "group", "list").stdout
    assert nua(tree, "setting", "set", "ui.size", "12").returncode == 0
    assert json.loads(nua(tree, "setting", "get", "ui.size", "--json").stdout)["value"] == 12
    assert nua(tree, "setting", "set", "ui.name", "plain text", "--string").returncode == 0
    assert "plain text" in nua(tree, "setting", "get", "ui.name").stdout
