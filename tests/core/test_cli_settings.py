"""The ``nua`` CLI finds the daemon from the daemon's own settings, and refuses bad ones as the daemon does.

A stand-in daemon (a ROUTER socket on a port the system chose, answering every
call with the name of the method it received) shows where the CLI connected.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from nua import settings
from nua.rpc.endpoint import RULES, find_endpoint

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


def nua(*args: str, env: dict[str, str], timeout: str = "10") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUA_")}
    return subprocess.run(
        [NUA, *args, "--timeout", timeout],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        check=False,
    )


def test_nua_zmq_port_finds_the_daemon(stand_in: StandIn) -> None:
    done = nua("call", "from_env", env={"NUA_ZMQ_PORT": str(stand_in.port)})
    assert (done.returncode, done.stdout.strip()) == (0, "from_env answered"), done.stderr


def test_config_and_nua_config_find_the_daemon(stand_in: StandIn, tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    config.write_text(f"[zmq]\naddress = '127.0.0.1'\nport = {stand_in.port}\n", encoding="utf-8")
    by_option = nua("call", "by_option", "--config", str(config), env={})
    assert by_option.stdout.strip() == "by_option answered", by_option.stderr
    by_variable = nua("call", "by_variable", env={"NUA_CONFIG": str(config)})
    assert by_variable.stdout.strip() == "by_variable answered", by_variable.stderr


def test_the_variable_beats_the_file_as_for_the_daemon(stand_in: StandIn, tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    config.write_text("[zmq]\nport = 1\n", encoding="utf-8")  # nothing answers there
    done = nua("call", "env_wins", env={"NUA_CONFIG": str(config), "NUA_ZMQ_PORT": str(stand_in.port)})
    assert done.stdout.strip() == "env_wins answered", done.stderr


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"NUA_ZMQ_PORT": "99999"}, "nua: environment NUA_ZMQ_PORT: [zmq] port must be from 1 to 65535, got 99999"),
        (
            {"NUA_ZMQ_ENDPOINT": "ipc://relative.sock"},
            "nua: environment NUA_ZMQ_ENDPOINT: [zmq] endpoint must be ipc://",
        ),
        ({"NUA_ZMQ_ADDRESS": "my host"}, "nua: environment NUA_ZMQ_ADDRESS: [zmq] address must be a host name"),
    ],
)
def test_bad_settings_exit_6_with_one_line(env: dict[str, str], line: str) -> None:
    done = nua("user", "count", env=env)
    assert done.returncode == 6
    (only,) = done.stderr.splitlines()
    assert only.startswith(line)


def test_a_bad_config_file_exits_6_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    config.write_text("[zmq]\nport = 70000\n", encoding="utf-8")
    done = nua("user", "count", "--config", str(config), env={})
    assert done.returncode == 6
    assert done.stderr.splitlines() == [f"nua: {config}: [zmq] port must be from 1 to 65535, got 70000"]


def test_what_the_full_loader_finds_is_reported_too(tmp_path: Path) -> None:
    # A file the quick reader cannot read for certain (an inline table) goes through the
    # full loader, whose every cheap rule applies, as for the daemon.
    config = tmp_path / "nua.toml"
    config.write_text("zmq = { port = 7001 }\n[rpc]\npage_size = 5000\n", encoding="utf-8")
    done = nua("user", "count", "--config", str(config), env={})
    assert done.returncode == 6
    assert done.stderr.splitlines() == [
        f"nua: {config}: [rpc] page_size (5000) must be at most [rpc] max_page_size (1000, from default (params.toml))"
    ]


def test_the_endpoint_option_needs_no_settings() -> None:
    endpoint = "ipc:///nonexistent/nua.sock"
    done = nua("user", "count", "--endpoint", endpoint, env={"NUA_ZMQ_PORT": "99999"}, timeout="0.3")
    assert done.returncode == 3  # unreachable, not "not configured": the settings were not read


def test_the_quick_reader_checks_with_the_schemas_own_rules() -> None:
    for key, rule in RULES.items():
        assert rule in settings._KEY_EXTRAS[("zmq", key)], key


@pytest.mark.parametrize(
    "env",
    [{"NUA_ZMQ_PORT": "0"}, {"NUA_ZMQ_PORT": "65536"}, {"NUA_ZMQ_ADDRESS": ""}, {"NUA_ZMQ_ENDPOINT": "tcp://x"}],
)
def test_a_value_the_quick_reader_refuses_gets_the_loaders_error(env: dict[str, str]) -> None:
    with pytest.raises(settings.SettingsError) as quick:
        find_endpoint(None, env)
    with pytest.raises(settings.SettingsError) as full:
        settings.load(None, env, deep=False)
    assert str(quick.value) == str(full.value)
    assert str(quick.value).startswith(f"environment {next(iter(env))}: [zmq] ")


def test_an_inline_zmq_table_is_read_as_the_daemon_reads_it(tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    config.write_text("zmq = { port = 7006 }\n", encoding="utf-8")
    assert find_endpoint(str(config), {}) == "tcp://127.0.0.1:7006" == settings.load(config, {}).zmq.bind_endpoint
