"""``[jobs.NAME]`` tables checked by meaning: one line per mistake naming the key, the same for the file and RPC."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from nua import settings
from nua.job_settings import CallAction, CommandAction, parse_job

USER = {"user": "root"} if os.geteuid() == 0 else {}


def test_a_table_reads_back_unchanged_from_its_own_table() -> None:
    table = {"schedule": "*/5 * * * *", "zone": "Europe/Paris", "command": ["backup", "--all"], **USER}
    made, problems = parse_job("backup", table, "test")
    assert made is not None, problems
    assert isinstance(made.action, CommandAction)
    again, _ = parse_job("backup", made.as_table(), "test")
    assert again == made
    call, _ = parse_job("report", {"schedule": "@daily", "call": "audit_list", "params": {"limit": 5}}, "test")
    assert call is not None
    assert call.action == CallAction("audit_list", {"limit": 5})
    assert (call.coalesce, call.max_running, call.misfire_grace_s, call.role) == (True, 1, 60.0, "admin")


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"call": "user_count"}, "[jobs.j] schedule is missing"),
        ({"schedule": "@daily"}, "needs exactly one action"),
        ({"schedule": "@daily", "call": "x", "command": "true"}, "needs exactly one action"),
        ({"schedule": "@daily", "call": "Bad-Name"}, "[jobs.j] call must name an RPC method"),
        ({"schedule": "@daily", "call": "user_count", "params": "x"}, "params must be a list or an object"),
        ({"schedule": "@daily", "call": "user_count", "cwd": "/"}, "only for a command job"),
        ({"schedule": "@daily", "command": "true", "cwd": "rel", **USER}, "[jobs.j] cwd must be an absolute path"),
        ({"schedule": "@daily", "command": "true", "timeout_s": 0, **USER}, "timeout_s must be above 0"),
        ({"schedule": "@daily", "call": "user_count", "zone": "Nowhere/City"}, "[jobs.j] zone"),
        ({"schedule": "@daily", "call": "user_count", "max_running": 0}, "max_running must be an integer"),
        ({"schedule": "@daily", "call": "user_count", "coalesce": "yes"}, "coalesce must be true or false"),
        ({"schedule": "@daily", "call": "user_count", "misfire_grace_s": -1}, "misfire_grace_s must be"),
        ({"schedule": "@daily", "call": "user_count", "role": "root"}, "role must be one of"),
        ({"schedule": "@daily", "call": "user_count", "colour": "red"}, "unknown key [jobs.j] colour"),
    ],
)
def test_each_mistake_is_one_line_naming_the_key(table: dict[str, Any], says: str) -> None:
    made, problems = parse_job("j", table, "f.toml")
    assert made is None
    assert any(says in problem and problem.startswith("f.toml: ") for problem in problems), problems


def test_the_settings_file_loads_its_jobs_and_names_the_file_in_a_mistake(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[jobs.nightly]\nschedule = "30 2 * * *"\nzone = "UTC"\ncall = "user_count"\n')
    loaded = settings.load(good, environ={})
    assert [job.name for job in loaded.jobs] == ["nightly"]
    assert loaded.cron.keep_days == 30
    bad = tmp_path / "bad.toml"
    bad.write_text('[jobs.nightly]\nschedule = "30 25 * * *"\ncall = "user_count"\n')
    with pytest.raises(settings.SettingsError, match=r"bad.toml: \[jobs.nightly\] schedule: .*Bad hour"):
        settings.load(bad, environ={})
