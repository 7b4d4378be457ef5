"""The ``nua`` CLI finds the daemon from the daemon's own settings, and refuses bad ones as the daemon does.

A stand-in daemon (a ROUTER socket on a port the system chose, answering every
call with the name of the method it received) shows where the CLI connected.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

NUA = str(Path(__file__).resolve().parents[2] / "bin" / "nua")


class StandIn:
    """A ROUTER answering each JSON-RPC call with ``"<method> answered"`` from its own thread."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.bind("tcp://127.0.0.1:*")
        self.port = int(self.socket.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not self.stopping.is_set():
            if not poller.poll(100):
                continue
            *envelope, payload = self.socket.recv_multipart()
            request: dict[str, Any] = json.loads(payload)
            reply = {"jsonrpc": "2.0", "id": request["id"], "result": f"{request['method']} answered"}
            self.socket.send_multipart([*envelope, json.dumps(reply).encode()])

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.socket.close(linger=0)
        self.context.term()


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    daemon = StandIn()
    yield daemon
    daemon.close()


Nua = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def nua(tmp_path: Path) -> Nua:
    """``bin/nua`` with a pid file of this test's own, so that no daemon running here is found."""

    def run(*args: str, env: dict[str, str], timeout: str = "10") -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("NUA_")}
        private = {"NUA_SERVER_PID_FILE": str(tmp_path / "run" / "nua.pid")}
        return subprocess.run(
            [NUA, *args, "--timeout", timeout],
            capture_output=True,
            text=True,
            timeout=60,
            env={**clean, **private, **env},
            check=False,
        )

    return run


def test_nua_zmq_port_finds_the_daemon(nua: Nua, stand_in: StandIn) -> None:
    done = nua("call", "from_env", env={"NUA_ZMQ_PORT": str(stand_in.port)})
    assert (done.returncode, done.stdout.strip()) == (0, "from_env answered"), done.stderr


def test_config_and_nua_config_find_the_daemon(nua: Nua, stand_in: StandIn, tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    config.write_text(f"[zmq]\naddress = '127.0.0.1'\nport = {stand_in.port}\n", encoding="utf-8")
    by_option = nua("call", "by_option", "--config", str(config), env={})
    assert by_option.stdout.strip() == "by_option answered", by_option.stderr
    by_variable = nua("call", "by_variable", env={"NUA_CONFIG": str(config)})
    assert by_variable.stdout.strip() == "by_variable answered", by_variable.stderr


def test_the_variable_beats_the_file_as_for_the_daemon(nua: Nua, stand_in: StandIn, tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    config.write_text("[zmq]\nport = 1\n", encoding="utf-8")  # nothing answers there
    done = nua("call", "env_wins", env={"NUA_CONFIG": str(config), "NUA_ZMQ_PORT": str(stand_in.port)})
    assert done.stdout.strip() == "env_wins answered", done.stderr


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"NUA_ZMQ_PORT": "99999"}, "nua: environment NUA_ZMQ_PORT: [zmq] port must be from 0 to 65535, got 99999"),
        (
            {"NUA_ZMQ_ENDPOINT": "ipc://relative.sock"},
            "nua: environment NUA_ZMQ_ENDPOINT: [zmq] endpoint must be ipc://",
        ),
        ({"NUA_ZMQ_ADDRESS": "my host"}, "nua: environment NUA_ZMQ_ADDRESS: [zmq] address must be a host name"),
    ],
)
def test_bad_settings_exit_6_with_one_line(nua: Nua, env: dict[str, str], line: str) -> None:
    done = nua("user", "count", env=env)
    assert done.returncode == 6
    (only,) = done.stderr.splitlines()
    assert only.startswith(line)


def test_a_bad_config_file_exits_6_naming_it(nua: Nua, tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    config.write_text("[zmq]\nport = 70000\n", encoding="utf-8")
    done = nua("user", "count", "--config", str(config), env={})
    assert done.returncode == 6
    assert done.stderr.splitlines() == [f"nua: {config}: [zmq] port must be from 0 to 65535, got 70000"]


def test_a_key_the_client_does_not_use_is_left_to_the_daemon(nua: Nua, tmp_path: Path) -> None:
    # The client reads only what finds the daemon; the daemon refuses such settings at its start.
    config = tmp_path / "nua.toml"
    config.write_text('[zmq]\nendpoint = "ipc:///nonexistent/nua.sock"\n[rpc]\npage_size = 5000\n', encoding="utf-8")
    done = nua("user", "count", "--config", str(config), env={}, timeout="0.3")
    assert done.returncode == 3, done.stderr  # looked for the daemon: unreachable, not "not configured"


def test_the_endpoint_option_needs_no_settings(nua: Nua) -> None:
    endpoint = "ipc:///nonexistent/nua.sock"
    done = nua("user", "count", "--endpoint", endpoint, env={"NUA_ZMQ_PORT": "99999"}, timeout="0.3")
    assert done.returncode == 3  # unreachable, not "not configured": the settings were not read
