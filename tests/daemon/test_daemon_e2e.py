"""The daemon with its whole tree, through the RPC client and the ``nua`` CLI.

Writes during a SIGTERM, crashes injected into each child with ``sys_fault``, the
restart intensity exceeded, and the README's ``make run`` + ``bin/nua``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from typing import Any, Self

import pytest
from daemon_helpers import REPO, WAIT_S, DaemonEnv, is_alive, wait_until

from nua import pidfile
from nua.rpc.cli import every_page
from nua.rpc.client import Client, DaemonUnreachableError
from nua.rpc.errors import RpcError

CLIENTS = 8


class Writers:
    """``CLIENTS`` threads, each with its own client, writing settings until told to stop or refused."""

    def __init__(self, endpoint: str, timeout: float = 1.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.acked: list[list[str]] = [[] for _ in range(CLIENTS)]
        self.errors: list[list[str]] = [[] for _ in range(CLIENTS)]
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._write, args=(n,)) for n in range(CLIENTS)]

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _write(self, n: int) -> None:
        with Client(self.endpoint, timeout=self.timeout) as client:
            for i in range(1_000_000):
                if self.stop.is_set():
                    return
                key = f"client{n}.key{i}"
                try:
                    client.call("setting_set", key, i)
                except Exception as exc:
                    self.errors[n].append(f"{type(exc).__name__}: {exc}")
                    if len(self.errors[n]) > 3 and not self.acked[n]:
                        return
                    continue
                self.acked[n].append(key)

    def total(self) -> int:
        return sum(len(keys) for keys in self.acked)


def tree_of(endpoint: str) -> dict[str, dict[str, Any]]:
    """The root's children by id, from ``sys_status``; empty while the gateway restarts."""
    try:
        # A short timeout: a call caught in a gateway restart is lost, and then
        # asking again beats waiting.
        with Client(endpoint, timeout=1.0) as client:
            tree = client.call("sys_status")["tree"]
    except (RpcError, DaemonUnreachableError):
        return {}
    return {child["id"]: child for child in tree["children"]}


def restarted(endpoint: str, child: str, times: int) -> dict[str, Any] | None:
    """``child``'s node once it has been restarted ``times`` times and runs again."""
    node = tree_of(endpoint).get(child)
    if node is None or node["restarts"] != times or node["state"] != "running":
        return None
    return node


def test_sigterm_while_8_clients_write_loses_nothing_acknowledged(daemon: DaemonEnv) -> None:
    pid = daemon.start()
    with Writers(daemon.endpoint) as writers:
        wait_until(lambda: all(len(keys) >= 20 for keys in writers.acked), what="every client to be served")
        os.kill(pid, signal.SIGTERM)
        daemon.wait_gone(pid)
        writers.stop.set()
    acked = {key for keys in writers.acked for key in keys}
    assert len(acked) >= CLIENTS * 20
    assert not daemon.pid_file.exists()

    daemon.start()
    with Client(daemon.endpoint, timeout=WAIT_S) as client:
        stored = {row["key"]: row["value"] for row in every_page(client, "setting_list")}
    missing = sorted(acked - stored.keys())
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    for key in acked:
        assert stored[key] == int(key.rsplit("key", 1)[1])


@pytest.fixture
def faulty(daemon: DaemonEnv) -> DaemonEnv:
    daemon.write_config(debug={"allow_fault_injection": True}, supervisor={"max_restarts": 10, "max_seconds": 60.0})
    return daemon


def test_sys_fault_restarts_each_child_while_clients_are_served(faulty: DaemonEnv) -> None:
    pid = faulty.start()
    with Writers(faulty.endpoint) as writers:
        for child in ("sentinel", "db_writer", "db_reader", "gateway"):
            before = writers.total()
            with Client(faulty.endpoint, timeout=WAIT_S) as client:
                if child == "gateway":
                    # The gateway sends this reply, then closes the connection as it
                    # restarts: a client the machine's load keeps from reading before the
                    # close may never see the reply (measured: 7 in 30 at load 8, 0 in 20
                    # at load 1.5). What is asserted of the gateway is its restart, below.
                    with contextlib.suppress(DaemonUnreachableError):
                        assert "crash injected" in client.call("sys_fault", child)
                else:
                    assert "crash injected" in client.call("sys_fault", child)
            node = wait_until(lambda child=child: restarted(faulty.endpoint, child, 1), what=f"{child} restarted")
            assert "sys_fault" in node["last_error"]
            wait_until(lambda before=before: writers.total() > before + CLIENTS, what=f"clients served after {child}")
    children = tree_of(faulty.endpoint)
    assert {child: node["restarts"] for child, node in children.items()} == {
        "sentinel": 1,
        "db_writer": 1,
        "db_reader": 1,
        "services": 0,
        "gateway": 1,
    }
    assert faulty.pid() == pid
    assert is_alive(pid)
    code, report = faulty.status()
    assert code == 0
    assert [node["restarts"] for node in report["tree"]["children"]] == [1, 1, 1, 0, 1]  # services: not crashed
    # Every write the clients saw acknowledged is there, crashes notwithstanding.
    with Client(faulty.endpoint, timeout=WAIT_S) as client:
        stored = {row["key"] for row in every_page(client, "setting_list")}
    assert {key for keys in writers.acked for key in keys} <= stored


def test_sys_fault_does_not_exist_by_default(daemon: DaemonEnv) -> None:
    daemon.start()
    with Client(daemon.endpoint, timeout=WAIT_S) as client:
        assert "sys_fault" not in client.call("rpc_methods")


def test_exceeding_restart_intensity_ends_the_daemon_non_zero_and_cleans_up(daemon: DaemonEnv) -> None:
    daemon.write_config(debug={"allow_fault_injection": True}, supervisor={"max_restarts": 1, "max_seconds": 60.0})
    process = daemon.spawn("run")
    wait_until(lambda: daemon.socket.is_socket() and daemon.pid() == process.pid, what="the daemon to serve")
    with Client(daemon.endpoint, timeout=WAIT_S) as client:
        client.call("sys_fault", "db_writer")
        wait_until(lambda: restarted(daemon.endpoint, "db_writer", 1), what="the first restart")
        # This crash ends the daemon: its reply may not leave before the gateway stops.
        client.timeout = 2.0
        with contextlib.suppress(DaemonUnreachableError):
            client.call("sys_fault", "db_writer")
    _, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 1, stderr
    escalation = next(line for line in stderr.splitlines() if "daemon_escalation" in line)
    assert "db_writer" in escalation
    assert "more than 1 restarts" in escalation
    assert not daemon.pid_file.exists()
    assert not daemon.socket.exists()


def test_make_run_then_nua_user_add_and_list(daemon: DaemonEnv) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    if subprocess.run([make, "-q", ".venv/.installed"], cwd=REPO, check=False).returncode != 0:
        pytest.skip("`make run` would (re)install .venv first; run it once by hand")
    # RUN_DIR (./.run by default) under the test's directory: the checkout's own stays untouched.
    run_dir = daemon.root / "dot-run"
    env = daemon.env()
    process = subprocess.Popen(
        [make, "run", f"RUN_DIR={run_dir}"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    daemon.popens.append(process)  # type: ignore[arg-type]
    pid_file = run_dir / "nua-orchestrator.pid"
    env["NUA_CONFIG"] = str(run_dir / "nua.toml")  # what bin/nua takes from .run/ in a checkout
    nua = str(REPO / "bin" / "nua")
    pid = None
    try:
        pid = wait_until(lambda: pid_file.exists() and pidfile.read_pid(pid_file), what="`make run` to start")
        daemon.pids.add(pid)
        wait_until(lambda: subprocess.run([nua, "status"], env=env, capture_output=True, check=False).returncode == 0,
                   what="`make run` to serve")  # fmt: skip
        added = subprocess.run(
            [nua, "user", "add", "alice", "alice@example.com", "--password-stdin"],
            input="correct horse battery staple\n",
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert added.returncode == 0, added.stderr
        listed = subprocess.run([nua, "user", "list"], env=env, capture_output=True, text=True, check=False)
        assert listed.returncode == 0, listed.stderr
        assert "alice" in listed.stdout
        assert "alice@example.com" in listed.stdout
        status = subprocess.run([nua, "status"], env=env, capture_output=True, text=True, check=False).stdout
        assert "endpoint:    tcp://127.0.0.1:" in status
        assert ":5001" not in status  # any free port: never an installed daemon's
        assert "none: it logs to its console" in status
        # Every file of the development daemon is in its run directory, the database and keys included.
        assert {"nua.toml", "nua.db", "keys", "client.key_secret", "nua-orchestrator.runtime.json"} <= {
            path.name for path in run_dir.iterdir()
        }
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGINT)  # Ctrl-C
    assert process.wait(WAIT_S) == 0
    assert not pid_file.exists()
    said = process.stdout.read().decode() if process.stdout else ""
    assert f"its files are in {run_dir}/" in said
