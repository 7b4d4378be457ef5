"""``nua-orchestrator config``: the effective settings as TOML, each key commented with its origin."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from nua import settings

REPO = Path(__file__).resolve().parents[2]
PG_URL = "postgresql+psycopg://nua:s3cret@127.0.0.1:5432/nua?sslpassword=k3y"


def origins(text: str) -> dict[tuple[str, str], str]:
    """Each ``[section] key`` of the printed TOML and the comment that follows its value."""
    found: dict[tuple[str, str], str] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("#"):
            key = line.split("=", 1)[0].strip()
            found[(section, key)] = line.rsplit("  # ", 1)[1]
    return found


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    config = tmp_path / "nua.toml"
    config.write_text("[db]\nmax_batch = 8\n[zmq]\nport = 7001\n", encoding="utf-8")
    env = {
        "NUA_ZMQ_PORT": "6131",
        "NUA_DB_URL": PG_URL,
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    return config, env


def test_each_key_says_whether_it_came_from_the_defaults_the_file_or_a_variable(
    sources: tuple[Path, dict[str, str]],
) -> None:
    config, env = sources
    text = settings.effective_toml(config, env)
    where = origins(text)
    assert where[("zmq", "port")] == "environment NUA_ZMQ_PORT"  # the variable beats the file's 7001
    assert where[("db", "max_batch")] == str(config)
    assert where[("server", "log_level")] == settings.DEFAULTS_SOURCE
    assert where[("db", "url")] == "environment NUA_DB_URL"
    assert len(where) == sum(len(keys) for keys in settings._KEY_TYPES.values())
    assert text.splitlines()[0].endswith(f"then the file {config},")


def test_the_output_is_the_effective_settings_and_loads_back(
    sources: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    config, env = sources
    text = settings.effective_toml(config, env)
    printed = tomllib.loads(text)
    assert printed["zmq"]["port"] == 6131
    assert printed["db"]["max_batch"] == 8
    assert printed["server"]["pid_file"] == settings.load(config, env).server.pid_file  # placeholders expanded
    assert "{" not in text
    again = tmp_path / "again.toml"
    again.write_text(text, encoding="utf-8")
    bare = {k: v for k, v in env.items() if k.startswith("XDG_")}
    reloaded = settings.load(again, bare)
    expected = settings.load(config, env)
    assert reloaded.zmq == expected.zmq
    assert reloaded.rpc == expected.rpc
    assert reloaded.db.max_batch == expected.db.max_batch


def test_passwords_in_the_database_url_are_masked(sources: tuple[Path, dict[str, str]]) -> None:
    config, env = sources
    text = settings.effective_toml(config, env)
    assert "s3cret" not in text
    assert "k3y" not in text
    assert tomllib.loads(text)["db"]["url"] == "postgresql+psycopg://nua:***@127.0.0.1:5432/nua?sslpassword=***"


def run_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUA_")}
    return subprocess.run(
        [sys.executable, "-m", "nua.daemon.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        cwd=REPO,
        check=False,
    )


def test_the_command_prints_it_and_exits_0(sources: tuple[Path, dict[str, str]]) -> None:
    config, env = sources
    done = run_command("--config", str(config), "config", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == settings.effective_toml(config, env)
    assert origins(done.stdout)[("db", "max_batch")] == str(config)


def test_the_command_exits_6_with_one_line_per_problem(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[zmq]\nport = 99999\n[security]\nscrypt_n = 1000\n", encoding="utf-8")
    done = run_command("config", env={"NUA_CONFIG": str(config), "NUA_RPC_CALL_TIMEOUT_S": "nan"})
    assert done.returncode == 6
    assert done.stdout == ""
    assert sorted(done.stderr.splitlines()) == [
        f"nua-orchestrator: {config}: [security] scrypt_n must be a power of two above 1 (1024, 16384, ...), got 1000",
        f"nua-orchestrator: {config}: [zmq] port must be from 0 to 65535, got 99999",
        (
            "nua-orchestrator: environment NUA_RPC_CALL_TIMEOUT_S: [rpc] call_timeout_s must be a number of seconds"
            " above 0 and at most 86400, got nan"
        ),
    ]


def test_start_runs_the_deep_rules_and_stop_status_do_not(tmp_path: Path) -> None:
    env = {
        "NUA_DB_URL": "nosuchdb://nua:s3cret@db.example/nua",
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    start = run_command("start", env=env)
    assert start.returncode == 6
    assert start.stderr.splitlines() == [
        (
            "nua-orchestrator: environment NUA_DB_URL: [db] url must name a database SQLAlchemy knows,"
            " not 'nosuchdb', got 'nosuchdb://nua:***@db.example/nua'"
        )
    ]
    assert not (tmp_path / "run").exists()  # refused at load, before any directory or process was made
    # Finding (and stopping) a daemon needs no database driver: a broken URL does not stand in the way.
    assert run_command("status", env=env).returncode == 3
    assert run_command("stop", env=env).returncode == 0


def test_env_values_and_secret_params_of_services_and_jobs_are_masked(tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    user = 'user = "root"\n' if os.geteuid() == 0 else ""
    config.write_text(
        f'[services.web]\ncommand = ["sleep", "1000"]\nenv = {{ API_TOKEN = "svc-s3cret", PORT = "8000" }}\n{user}'
        f'[jobs.backup]\nschedule = "@daily"\ncommand = ["true"]\nenv = {{ AWS_SECRET = "job-s3cret" }}\n{user}'
        '[jobs.invite]\nschedule = "@daily"\ncall = "user_add"\n'
        'params = [{ username = "eve", email = "eve@example.org", password = "call-s3cret" }]\n',
        encoding="utf-8",
    )
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run"), "XDG_STATE_HOME": str(tmp_path / "state")}
    done = run_command("--config", str(config), "config", env=env)
    assert done.returncode == 0, done.stderr
    for secret in ("svc-s3cret", "job-s3cret", "call-s3cret"):
        assert secret not in done.stdout
    printed = tomllib.loads(done.stdout)
    assert printed["services"]["web"]["env"] == {"API_TOKEN": "***", "PORT": "***"}  # the names kept, every value
    assert printed["jobs"]["backup"]["env"] == {"AWS_SECRET": "***"}
    assert printed["jobs"]["invite"]["params"] == [{"username": "eve", "email": "eve@example.org", "password": "***"}]
