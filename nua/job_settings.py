"""A cron job's declaration (``[jobs.NAME]`` in the settings file, or ``cron_add``), checked by meaning.

One :class:`JobConfig` per job. :func:`parse_job` turns a table (TOML, or an RPC
call's JSON) into one, or into one line per mistake naming the key, so that the
settings loader and the RPC layer refuse the same things in the same words (as
:func:`nua.service_settings.parse_service` does for services, which also checks
a command job's ``command``, ``shell``, ``cwd``, ``env``, ``user`` and ``group``:
a job's process runs under the services' rules).

The keys (the defaults in ``params.toml``):

- ``schedule``: a cron expression, an alias or ``every N(s|m|h|d)`` (:mod:`nua.schedule`);
  ``zone``: an IANA zone, default the system's;
- the action, one of: ``call`` (an RPC method of this daemon) with ``params`` (a
  list or an object); or ``command`` (with ``shell``, ``cwd``, ``env``, ``user``,
  ``group``) and ``timeout_s``;
- ``misfire_grace_s``, ``coalesce``, ``max_running``, ``jitter_s``, ``paused``;
- ``role`` (settings file only): the role a ``call`` runs with; a job added by RPC
  runs with the role of the key that added it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nua.schedule import Schedule, ScheduleError, parse, system_zone, zone
from nua.service_settings import NAME_PATTERN, ServiceConfig, parse_service

COMMAND_KEYS = ("command", "shell", "cwd", "env", "user", "group")
CALL_KEYS = ("call", "params")
JOB_KEYS = ("schedule", "zone", "timeout_s", "misfire_grace_s", "coalesce", "max_running", "jitter_s", "paused", "role")
KEYS = (*JOB_KEYS, *CALL_KEYS, *COMMAND_KEYS)
ROLES = ("reader", "operator", "admin")
METHOD_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,127}")
MAX_PARAMS_BYTES = 16 * 1024
MAX_SECONDS = 7 * 86400.0
MAX_RUNNING = 100
DEFAULT_GRACE_S = 60.0
DEFAULT_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class CallAction:
    """Call the daemon's own RPC method ``method`` with ``params``."""

    method: str
    params: Any = field(default_factory=list)


@dataclass(frozen=True)
class CommandAction:
    """Run ``process`` (a service declaration: argv, cwd, env, user, group) once; ended after ``timeout_s``."""

    process: ServiceConfig
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class JobConfig:
    """One job, checked: :func:`parse_job` is the only way to make one from outside input."""

    name: str
    schedule: Schedule
    action: CallAction | CommandAction
    misfire_grace_s: float = DEFAULT_GRACE_S
    coalesce: bool = True
    max_running: int = 1
    jitter_s: float = 0.0
    paused: bool = False
    role: str = "admin"

    @property
    def zone(self) -> str:
        return self.schedule.zone_name

    def as_table(self) -> dict[str, Any]:
        """The declaration as a JSON/TOML table that :func:`parse_job` reads back unchanged."""
        table: dict[str, Any] = {"schedule": self.schedule.expression, "zone": self.zone}
        action = self.action
        if isinstance(action, CallAction):
            table.update(call=action.method, params=action.params)
        else:
            process = action.process.as_table()
            table.update({key: process[key] for key in COMMAND_KEYS if key in process})
            if not table.get("env"):
                table.pop("env", None)
            table["timeout_s"] = action.timeout_s
        table.update(
            misfire_grace_s=self.misfire_grace_s,
            coalesce=self.coalesce,
            max_running=self.max_running,
            jitter_s=self.jitter_s,
            paused=self.paused,
            role=self.role,
        )
        return table


def _seconds(table: Mapping[str, Any], key: str, default: float, problems: list[str], prefix: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append(f"{prefix} {key} must be a number of seconds from 0 to {MAX_SECONDS:g}, got {value!r}")
        return default
    if not 0 <= value <= MAX_SECONDS:
        problems.append(f"{prefix} {key} must be a number of seconds from 0 to {MAX_SECONDS:g}, got {value!r}")
        return default
    return float(value)


def _boolean(table: Mapping[str, Any], key: str, problems: list[str], prefix: str, *, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"{prefix} {key} must be true or false, got {value!r}")
        return default
    return value


def parse_job(
    name: str, table: Any, source: str, *, euid: int | None = None, default_zone: str | None = None
) -> tuple[JobConfig | None, list[str]]:
    """``table`` checked as the declaration of job ``name``: the config, or the mistakes (one line each).

    ``default_zone`` is the zone of a table without ``zone`` (the system's unless given).
    """
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        rule = "must be 1 to 64 letters, digits, '_', '.', '-', first a letter or digit"
        return None, [f"{source}: job name {name!r} {rule}"]
    prefix = f"{source}: [jobs.{name}]"
    if not isinstance(table, Mapping):
        return None, [f"{prefix} must be a table"]
    problems = [
        f"{source}: unknown key [jobs.{name}] {key} (known: {', '.join(KEYS)})" for key in table if key not in KEYS
    ]
    zone_name = table.get("zone", default_zone or system_zone())
    schedule: Schedule | None = None
    try:
        zone(zone_name)
    except ScheduleError as exc:
        problems.append(f"{prefix} zone: {exc}")
    else:
        if "schedule" not in table:
            problems.append(f"{prefix} schedule is missing (a cron expression such as '*/5 * * * *', or 'every 30s')")
        else:
            try:
                schedule = parse(table["schedule"], zone_name)
            except ScheduleError as exc:
                problems.append(f"{prefix} schedule: {exc}")
    action = _action(name, table, _Where(source, prefix, euid), problems)
    max_running = table.get("max_running", 1)
    if isinstance(max_running, bool) or not isinstance(max_running, int) or not 1 <= max_running <= MAX_RUNNING:
        problems.append(f"{prefix} max_running must be an integer from 1 to {MAX_RUNNING}, got {max_running!r}")
        max_running = 1
    role = table.get("role", "admin")
    if role not in ROLES:
        problems.append(f"{prefix} role must be one of {', '.join(ROLES)}, got {role!r}")
        role = "admin"
    grace_s = _seconds(table, "misfire_grace_s", DEFAULT_GRACE_S, problems, prefix)
    coalesce = _boolean(table, "coalesce", problems, prefix, default=True)
    jitter_s = _seconds(table, "jitter_s", 0.0, problems, prefix)
    paused = _boolean(table, "paused", problems, prefix, default=False)
    if problems or schedule is None or action is None:
        return None, problems
    made = JobConfig(name, schedule, action, grace_s, coalesce, max_running, jitter_s, paused, role)
    return made, []


@dataclass(frozen=True)
class _Where:
    """Where a table comes from (for the mistakes' words) and the daemon's uid (for a command's account)."""

    source: str
    prefix: str
    euid: int | None


def _action(  # noqa: PLR0911 - one return per way an action is wrong
    name: str, table: Mapping[str, Any], where: _Where, problems: list[str]
) -> CallAction | CommandAction | None:
    source, prefix, euid = where.source, where.prefix, where.euid
    has_call, has_command = "call" in table, "command" in table
    if has_call == has_command:
        problems.append(f'{prefix} needs exactly one action: call = "METHOD" (with params) or command = [...]')
        return None
    if has_call:
        stray = [key for key in (*COMMAND_KEYS, "timeout_s") if key in table]
        if stray:
            problems.append(f"{prefix} {', '.join(stray)}: only for a command job, not with call")
        method = table["call"]
        if not isinstance(method, str) or METHOD_PATTERN.fullmatch(method) is None:
            problems.append(f"{prefix} call must name an RPC method (such as audit_list), got {method!r}")
            return None
        params = table.get("params", [])
        if not isinstance(params, list | dict):
            problems.append(f"{prefix} params must be a list or an object of the method's params, got {params!r}")
            return None
        if len(json.dumps(params)) > MAX_PARAMS_BYTES:
            problems.append(f"{prefix} params must be at most {MAX_PARAMS_BYTES} bytes of JSON")
            return None
        return CallAction(method, params)
    if "params" in table:
        problems.append(f"{prefix} params: only for a call job, not with command")
    process, command_problems = parse_service(
        name, {key: table[key] for key in COMMAND_KEYS if key in table}, source, euid=euid, section="jobs"
    )
    problems += command_problems
    timeout_s = _seconds(table, "timeout_s", DEFAULT_TIMEOUT_S, problems, prefix)
    if timeout_s == 0:
        problems.append(f"{prefix} timeout_s must be above 0 (a job's process cannot run forever)")
    if process is None:
        return None
    return CommandAction(process, timeout_s)


__all__ = ["KEYS", "CallAction", "CommandAction", "JobConfig", "parse_job"]
