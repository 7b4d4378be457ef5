"""Settings: defaults < config file < environment, and errors that name the key and the source."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path

import pytest

from nua import settings
from nua.settings import Settings, SettingsError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_packaged_defaults_cover_exactly_the_schema() -> None:
    defaults = tomllib.loads(settings.defaults_text())
    assert "services" not in defaults  # no service by default; each [services.NAME] is checked on its own
    assert "jobs" not in defaults  # likewise each [jobs.NAME]
    # The tables' types are loaded only with tables (see nua.settings): not sections.
    hints = typing.get_type_hints(Settings, localns={"JobConfig": object, "ServiceConfig": object})
    for section in dataclasses.fields(Settings):
        if section.name in {"config_file", "origins", "services", "jobs"}:
            continue
        keys = {f.name for f in dataclasses.fields(hints[section.name])}
        assert set(defaults[section.name]) == keys, section.name


def test_defaults_keep_the_original_names_and_values() -> None:
    loaded = settings.load(environ={})
    assert loaded.zmq.address == "127.0.0.1"
    assert loaded.zmq.port == 5001
    assert loaded.zmq.bind_endpoint == "tcp://127.0.0.1:5001"
    assert loaded.server.start_zmq_server is True
    assert loaded.db.backend == "sqlite"
    assert loaded.debug.allow_fault_injection is False
    assert loaded.config_file is None


def test_default_paths_are_private_to_the_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(settings.os, "geteuid", lambda: 1000)
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run"), "XDG_STATE_HOME": str(tmp_path / "state")}
    loaded = settings.load(environ=env)
    assert loaded.server.pid_file == f"{tmp_path}/run/nua/nua-orchestrator.pid"
    assert loaded.server.log_file == f"{tmp_path}/state/nua/nua-orchestrator.log"
    assert loaded.db.url == f"sqlite:///{tmp_path}/state/nua/nua.db"


def test_root_uses_the_system_directories(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings.os, "geteuid", lambda: 0)
    loaded = settings.load(environ={})
    assert loaded.server.pid_file == "/run/nua/nua-orchestrator.pid"
    assert loaded.server.log_file == "/var/log/nua/nua-orchestrator.log"
    assert loaded.db.url == "sqlite:////var/lib/nua/nua.db"


def test_precedence_defaults_then_file_then_environment(tmp_path: Path) -> None:
    config = write(tmp_path / "nua.toml", '[zmq]\nport = 6000\naddress = "127.0.0.2"\n[rpc]\ncall_timeout_s = 3\n')
    loaded = settings.load(config, environ={"NUA_ZMQ_PORT": "5002"})
    assert loaded.zmq.port == 5002  # environment beats the file
    assert loaded.zmq.address == "127.0.0.2"  # the file beats the defaults
    assert loaded.rpc.call_timeout_s == 3.0  # an integer is a valid float
    assert loaded.config_file == config


def test_the_config_file_can_come_from_nua_config(tmp_path: Path) -> None:
    config = write(tmp_path / "nua.toml", "[supervisor]\nmax_restarts = 9\n")
    assert settings.load(environ={"NUA_CONFIG": str(config)}).supervisor.max_restarts == 9


def test_environment_values_are_parsed_by_type() -> None:
    loaded = settings.load(
        environ={
            "NUA_DEBUG_ALLOW_FAULT_INJECTION": "yes",
            "NUA_RPC_PLUGINS": "a.b, c",
            "NUA_SUPERVISOR_MAX_SECONDS": "2.5",
            "NUA_DB_URL": "postgresql+psycopg://postgres@127.0.0.1/test",
            "NUA_TEST_PG_URL": "not a setting: ignored",
        }
    )
    assert loaded.debug.allow_fault_injection is True
    assert loaded.rpc.plugins == ["a.b", "c"]
    assert loaded.supervisor.max_seconds == 2.5
    assert loaded.db.url == "postgresql+psycopg://postgres@127.0.0.1/test"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[zmq]\nprot = 1\n", "unknown key [zmq] prot"),
        ("[zqm]\nport = 1\n", "unknown section [zqm]"),
        ('[zmq]\nport = "5001"\n', "[zmq] port must be an integer, got '5001'"),
        ("[zmq]\nport = true\n", "[zmq] port must be an integer, got True"),
        ("[server]\nstart_zmq_server = 1\n", "[server] start_zmq_server must be true or false"),
        ('[rpc]\nplugins = "x"\n', "[rpc] plugins must be a list of str"),
        ('[server]\nlog_level = "loud"\n', "[server] log_level must be a log level"),
        ("[zmq\nport = 1\n", "not valid TOML"),
        ("zmq = 1\n", "[zmq] must be a table"),
    ],
)
def test_a_bad_config_file_names_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "bad.toml", text)
    with pytest.raises(SettingsError) as raised:
        settings.load(config, environ={})
    assert str(raised.value).startswith(str(config))
    assert message in str(raised.value)


def test_an_unreadable_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(SettingsError, match=f"{missing}: cannot read config file"):
        settings.load(missing, environ={})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NUA_ZMQ_PORT", "fifty", "environment NUA_ZMQ_PORT: [zmq] port must be an integer"),
        ("NUA_ZMQ_PROT", "1", "unknown setting NUA_ZMQ_PROT"),
        ("NUA_SERVER_START_ZMQ_SERVER", "maybe", "[server] start_zmq_server must be true or false"),
        ("NUA_DB_SQLITE_SYNCHRONOUS", "SOMETIMES", "[db] sqlite_synchronous must be a synchronous mode"),
    ],
)
def test_a_bad_environment_variable_names_it(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        settings.load(environ={name: value})


def test_the_database_url_is_shown_without_its_password() -> None:
    url = "postgresql+psycopg://nua:s3cr%40t@db.example:5432/nua"
    shown = settings.load(environ={"NUA_DB_URL": url}).db.safe_url
    assert "s3cr" not in shown
    assert shown == "postgresql+psycopg://nua:***@db.example:5432/nua"
    assert settings.load(environ={}).db.safe_url.startswith("sqlite:///")
