"""The nua CLI's quick lookup of the daemon gives what the full settings loader gives, or leaves it to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nua import client_settings, settings


def full(env: dict[str, str]) -> client_settings.Places:
    loaded = settings.load(None, env, deep=False)
    return client_settings.Places(loaded.server.pid_file, loaded.zmq.bind_endpoint, loaded.zmq.client_key)


@pytest.mark.parametrize(
    ("config_text", "env"),
    [
        (None, {}),
        (None, {"XDG_RUNTIME_DIR": "/run/user/4242"}),
        (None, {"NUA_ZMQ_PORT": "5999"}),
        (None, {"NUA_ZMQ_ADDRESS": "127.0.0.2", "NUA_ZMQ_PORT": "6001"}),
        (None, {"NUA_ZMQ_ENDPOINT": "ipc:///tmp/x.sock", "NUA_SERVER_PID_FILE": "/run/x/nua.pid"}),
        ("[zmq]\nport = 7001\nmax_clients = 5\n", {}),
        ("# comment\n[server]\nlog_level = 'debug'\n[zmq]\naddress = '127.0.0.3' # inline\nport = 7002\n", {}),
        ('[zmq]\nendpoint = "ipc://{runtime_dir}/nua.sock"\n', {"XDG_RUNTIME_DIR": "/run/user/4242"}),
        ('[server]\npid_file = "{runtime_dir}/other.pid"\n', {"XDG_RUNTIME_DIR": "/run/user/4242"}),
        ("[zmq]\nport = 7003\n", {"NUA_ZMQ_PORT": "7004"}),
        ("zmq.port = 7005\n", {}),
        ("[zmq]\nport = 0x1F41\n", {}),
        ('[db]\nurl = """x\n[zmq]\nport = 1\n"""\n', {}),
    ],
)
def test_same_as_the_settings_loader(tmp_path: Path, config_text: str | None, env: dict[str, str]) -> None:
    if config_text is not None:
        config = tmp_path / "nua.toml"
        config.write_text(config_text, encoding="utf-8")
        env = {**env, "NUA_CONFIG": str(config)}
    assert client_settings.places(None, env) == full(env)


@pytest.mark.parametrize(
    ("config_text", "env"),
    [
        ('[zmq]\nport = "not a number"\n', {}),
        ("[zmq]\nport = 99999\n", {}),
        ("[zmq]\nport = 5001\n", {"NUA_ZMQ_PORT": "abc"}),
        ('[zmq]\nendpoint = "tcp://127.0.0.1:abc"\n', {}),
        ('[server]\npid_file = "relative.pid"\n', {}),
        ("[zmq\nport = 1\n", {}),
        ("zmq = 3\n", {}),
    ],
)
def test_what_it_does_not_understand_is_left_to_the_full_loader(
    tmp_path: Path, config_text: str, env: dict[str, str]
) -> None:
    config = tmp_path / "nua.toml"
    config.write_text(config_text, encoding="utf-8")
    env = {**env, "NUA_CONFIG": str(config)}
    assert client_settings.places(None, env) is None
    with pytest.raises(settings.SettingsError):
        settings.load(None, env, deep=False)


def test_a_missing_file_is_left_to_the_full_loader(tmp_path: Path) -> None:
    assert client_settings.places(str(tmp_path / "missing.toml"), {}) is None


def test_the_cli_path_imports_neither_the_schema_nor_dataclasses() -> None:
    # Each costs the nua CLI about 8 ms of a 60 ms run: the minimal tinyrpc script's own time.
    probe = (
        "import sys; from nua import client_settings, runtime; client_settings.places(None, {}); "
        "print(sorted(m for m in ('nua.settings', 'dataclasses', 'inspect') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
