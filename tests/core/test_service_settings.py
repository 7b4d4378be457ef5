"""``[services.NAME]`` tables: every key checked by meaning at load, one line naming the file and key."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nua import settings
from nua.service_settings import parse_service, start_order

ORCHESTRATOR = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "nua-orchestrator")
USER = 'user = "root"\n' if os.geteuid() == 0 else ""


def load(tmp_path: Path, text: str) -> settings.Settings:
    path = tmp_path / "nua.toml"
    path.write_text(text)
    return settings.load(path, environ={})


def test_services_load_in_dependency_order(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        f'[services.web]\ncommand = "python3 -m http.server 8000"\ndepends_on = ["db"]\n{USER}'
        f'[services.db]\ncommand = ["sleep", "300"]\nenv = {{ A = "b" }}\nstop_signal = "INT"\n{USER}'
        f'[services.shelly]\ncommand = "echo $HOME | cat"\nshell = true\n{USER}',
    )
    assert [s.name for s in loaded.services] == ["db", "shelly", "web"]
    web = loaded.services[2]
    assert web.argv == ["python3", "-m", "http.server", "8000"]
    assert loaded.services[0].stop_signal == "SIGINT"
    assert loaded.services[1].argv == ["/bin/sh", "-c", "echo $HOME | cat"]
    assert loaded.services_log_dir == Path(loaded.server.log_file).parent / "services"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("command = []", "command"),
        ("command = 'unclosed \"quote'", "command"),
        ("shell = 'yes'", "shell"),
        ("cwd = 'relative/dir'", "cwd"),
        ("env = { A = 1 }", "env"),
        ("restart = 'always'", "restart"),
        ("start_s = -1", "start_s"),
        ("backoff_s = 0", "backoff_s"),
        ("backoff_max_s = 1e9", "backoff_max_s"),
        ("max_retries = -1", "max_retries"),
        ("stop_signal = 'KILL'", "stop_signal"),
        ("stop_timeout_s = nan", "stop_timeout_s"),
        ("depends_on = 'db'", "depends_on"),
        ("autostart = 1", "autostart"),
        ("log_max_bytes = 10", "log_max_bytes"),
        ("log_backups = 1.5", "log_backups"),
        ("user = 'no-such-account-here'", "user"),
        ("group = 'no-such-group-here'", "group"),
        ("colour = 'blue'", "colour"),
    ],
)
def test_each_bad_key_is_one_line_naming_file_and_key(tmp_path: Path, line: str, key: str) -> None:
    command = "" if line.startswith("command") else "command = ['true']\n"
    user = "" if line.startswith("user") else USER
    with pytest.raises(settings.SettingsError) as caught:
        load(tmp_path, f"[services.svc]\n{command}{user}{line}\n")
    lines = str(caught.value).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{tmp_path / 'nua.toml'}: ")
    assert f"[services.svc] {key}" in lines[0]


def test_a_cycle_is_named(tmp_path: Path) -> None:
    with pytest.raises(settings.SettingsError, match=r"cycle: a -> b -> a"):
        load(
            tmp_path,
            f"[services.a]\ncommand='true'\ndepends_on=['b']\n{USER}[services.b]\ncommand='true'\ndepends_on=['a']\n{USER}",
        )


def test_an_unknown_dependency_is_named(tmp_path: Path) -> None:
    with pytest.raises(settings.SettingsError, match="depends_on names 'ghost'"):
        load(tmp_path, f"[services.a]\ncommand='true'\ndepends_on=['ghost']\n{USER}")


def test_a_root_daemon_needs_user_written_out() -> None:
    made, problems = parse_service("web", {"command": "true"}, "f.toml", euid=0)
    assert made is None
    assert problems == [
        (
            "f.toml: [services.web] user is missing: a daemon running as root needs the account to run it as"
            ' (write user = "root" to run it as root)'
        )
    ]
    made, problems = parse_service("web", {"command": "true", "user": "root"}, "f.toml", euid=0)
    assert made is not None
    assert problems == []


def test_a_non_root_daemon_cannot_run_a_service_as_another_user() -> None:
    made, problems = parse_service("web", {"command": "true", "user": "root"}, "f.toml", euid=12345)
    assert made is None
    assert "needs the daemon to run as root" in problems[0]


def test_a_bad_name_is_refused() -> None:
    made, problems = parse_service("../etc", {"command": "true"}, "f.toml", euid=1000)
    assert made is None
    assert "service name '../etc'" in problems[0]


def test_start_order_is_stable_and_total() -> None:
    tables = {"c": ["a", "b"], "b": ["a"], "a": [], "d": []}
    configs = [parse_service(n, {"command": "true", "depends_on": d}, "t", euid=1000)[0] for n, d in tables.items()]
    ordered, problems = start_order([c for c in configs if c is not None], "t")
    assert problems == []
    assert [c.name for c in ordered] == ["a", "b", "c", "d"]


def test_config_shows_services_with_their_origin_and_exits_6_on_a_mistake(tmp_path: Path) -> None:
    path = tmp_path / "nua.toml"
    path.write_text(f"[services.web]\ncommand = 'sleep 1'\n{USER}")
    shown = subprocess.run([ORCHESTRATOR, "--config", str(path), "config"], capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert f"[services.web]  # {path}" in shown.stdout
    assert 'command = [ "sleep", "1",]' in shown.stdout or 'command = ["sleep", "1"]' in shown.stdout
    path.write_text(f"[services.web]\ncommand = 'sleep 1'\nrestart = 'sometimes'\n{USER}")
    refused = subprocess.run(
        [ORCHESTRATOR, "--config", str(path), "config"], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 6
    assert f"{path}: [services.web] restart must be one of permanent, transient, temporary" in refused.stderr
