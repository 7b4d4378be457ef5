"""The CLI's quick endpoint lookup gives exactly what the daemon's settings give."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nua import settings
from nua.rpc.endpoint import find_endpoint


@pytest.mark.parametrize(
    ("config_text", "env"),
    [
        (None, {}),
        (None, {"NUA_ZMQ_PORT": "5999"}),
        (None, {"NUA_ZMQ_ADDRESS": "127.0.0.2", "NUA_ZMQ_PORT": "6001"}),
        (None, {"NUA_ZMQ_ENDPOINT": "ipc:///tmp/x.sock"}),
        ("[zmq]\nport = 7001\n", {}),
        ("# comment\n[server]\nlog_level = 'debug'\n[zmq]\naddress = '127.0.0.3' # inline\nport = 7002\n", {}),
        ('[zmq]\nendpoint = "ipc://{runtime_dir}/nua.sock"\n', {"XDG_RUNTIME_DIR": "/run/user/4242"}),
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
    assert find_endpoint(None, env) == settings.load(None, env, deep=False).zmq.bind_endpoint


def test_errors_come_from_the_settings_loader(tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    config.write_text('[zmq]\nport = "not a number"\n', encoding="utf-8")
    with pytest.raises(settings.SettingsError, match="port"):
        find_endpoint(str(config), {})
    with pytest.raises(settings.SettingsError, match="NUA_ZMQ_PORT"):
        find_endpoint(None, {"NUA_ZMQ_PORT": "abc"})
    with pytest.raises(settings.SettingsError):
        find_endpoint(str(tmp_path / "missing.toml"), {})


def test_the_packaged_defaults_take_the_quick_path() -> None:
    # The full loader costs the CLI about 15 ms of imports; a [zmq] key of the daemon's
    # alone (max_clients) once sent every lookup through it.
    probe = (
        "import sys; from nua.rpc.endpoint import find_endpoint; "
        "find_endpoint(None, {}); print('nua.settings' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "False"
