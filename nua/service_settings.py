"""A service's declaration (``[services.NAME]`` in the settings file, or ``service_add``), checked by meaning.

One :class:`ServiceConfig` per service: the program to run and how to supervise
it. :func:`parse_service` turns a table (from TOML or from an RPC call's JSON)
into one, or into one line per mistake naming the key, so that the settings
loader and the RPC layer refuse the same things in the same words.
:func:`start_order` orders services so that each comes after what it
``depends_on``; a cycle or an unknown name is a mistake that names it.

The keys and their defaults (supervisord's names in brackets):

- ``command``: an argv list, or a string split with :func:`shlex.split`; with
  ``shell = true`` the string is run by ``/bin/sh -c`` and nothing else is.
- ``cwd`` (absolute), ``env`` (a table of strings, merged over the clean
  environment of :func:`clean_environment`), ``user``/``group``.
- ``restart``: ``permanent`` (always restarted), ``transient`` (restarted unless
  it exits with code 0), ``temporary`` (never).
- ``start_s`` [startsecs]: seconds up before the start counts as a success.
- ``backoff_s``/``backoff_max_s``/``max_retries`` [startretries]: after a failed
  start, wait ``backoff_s * 2**(n-1)`` (at most ``backoff_max_s``), then FATAL
  after ``max_retries`` failed starts in a row.
- ``stop_signal``, ``stop_timeout_s`` [stopsignal, stopwaitsecs]; ``depends_on``;
  ``autostart``; ``log_max_bytes``/``log_backups`` [stdout_logfile_maxbytes/backups].
"""

from __future__ import annotations

import grp
import math
import os
import pwd
import re
import shlex
import signal
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

# A service's name is also a file name ({log_dir}/services/NAME.log) and a child id.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
RESTART_TYPES = ("permanent", "transient", "temporary")
# The PATH a service gets unless its ``env`` says otherwise (systemd's default).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_SECONDS = 86400.0
MAX_COUNT = 2**31 - 1
MAX_ARGS = 4096
MAX_ENV = 1024


@dataclass(frozen=True)
class ServiceConfig:
    """One service, checked: :func:`parse_service` is the only way to make one from outside input."""

    name: str
    command: tuple[str, ...]
    shell: bool = False
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    group: str | None = None
    restart: str = "permanent"
    start_s: float = 1.0
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retries: int = 5
    stop_signal: str = "SIGTERM"
    stop_timeout_s: float = 10.0
    depends_on: tuple[str, ...] = ()
    autostart: bool = True
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5

    @property
    def argv(self) -> list[str]:
        """What is executed: the command itself, or ``/bin/sh -c`` and the command with ``shell``."""
        return ["/bin/sh", "-c", self.command[0]] if self.shell else list(self.command)

    @property
    def stop_signum(self) -> signal.Signals:
        return signal.Signals[self.stop_signal]

    def backoff_delay_s(self, failed_starts: int) -> float:
        """The wait before start number ``failed_starts + 1``: 1, 2, 4 … times ``backoff_s``, capped."""
        exponent = min(max(failed_starts - 1, 0), 62)
        return min(self.backoff_s * 2.0**exponent, self.backoff_max_s)

    def as_table(self) -> dict[str, Any]:
        """The declaration as a JSON/TOML table that :func:`parse_service` reads back unchanged."""
        table = asdict(self)
        del table["name"]
        table["command"] = self.command[0] if self.shell else list(self.command)
        table["env"] = dict(self.env)
        table["depends_on"] = list(self.depends_on)
        return {key: value for key, value in table.items() if value is not None}


KEYS = tuple(key for key in ServiceConfig.__dataclass_fields__ if key != "name")


class _Checker:
    """Collects one line per mistake in one service's table."""

    def __init__(self, service: str, source: str, table: Mapping[str, Any], section: str = "services") -> None:
        self.prefix = f"{source}: [{section}.{service}]"
        self.table = table
        self.problems: list[str] = []

    def complain(self, key: str, text: str) -> None:
        self.problems.append(f"{self.prefix} {key} {text}, got {self.table.get(key)!r}")

    def boolean(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            self.complain(key, "must be true or false")
            return default
        return value

    def seconds(self, key: str, default: float, *, zero: bool = False) -> float:
        value = self.table.get(key, default)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        low_ok = ok and (value >= 0 if zero else value > 0)
        if not (ok and low_ok and value <= MAX_SECONDS):
            self.complain(key, f"must be a number of seconds {'from 0' if zero else 'above 0'} to {MAX_SECONDS:g}")
            return default
        return float(value)

    def count(self, key: str, default: int, low: int = 0) -> int:
        value = self.table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_COUNT:
            self.complain(key, f"must be an integer from {low} to {MAX_COUNT}")
            return default
        return value

    def text(self, key: str) -> str | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value or "\0" in value:
            self.complain(key, "must be a non-empty string")
            return None
        return value


def parse_service(
    name: str, table: Any, source: str, *, euid: int | None = None, section: str = "services"
) -> tuple[ServiceConfig | None, list[str]]:
    """``table`` checked as the declaration of service ``name``: the config, or the mistakes (one line each).

    ``euid`` is the daemon's effective uid (``os.geteuid()`` unless given): as root,
    a service must name its ``user`` (``user = "root"`` written out to run as root);
    otherwise ``user``/``group`` may only name the daemon's own account. ``section``
    names the table in the mistakes: a cron job's command is checked here too
    (``[jobs.NAME] cwd must be an absolute path``).
    """
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        rule = "must be 1 to 64 letters, digits, '_', '.', '-', first a letter or digit"
        return None, [f"{source}: {section.rstrip('s')} name {name!r} {rule}"]
    if not isinstance(table, Mapping):
        return None, [f"{source}: [{section}.{name}] must be a table"]
    check = _Checker(name, source, table, section)
    for key in table:
        if key not in KEYS:
            check.problems.append(f"{source}: unknown key [{section}.{name}] {key} (known: {', '.join(KEYS)})")
    shell = check.boolean("shell", default=False)
    command = _command(check, shell=shell)
    cwd = check.text("cwd")
    if cwd is not None and not PurePath(cwd).is_absolute():
        check.complain("cwd", "must be an absolute path")
    env = _environment(check)
    user, group = _account(check, os.geteuid() if euid is None else euid)
    restart = table.get("restart", "permanent")
    if restart not in RESTART_TYPES:
        check.complain("restart", f"must be one of {', '.join(RESTART_TYPES)}")
        restart = "permanent"
    stop_signal = _signal_name(check)
    config = ServiceConfig(
        name=name,
        command=command,
        shell=shell,
        cwd=cwd,
        env=env,
        user=user,
        group=group,
        restart=restart,
        start_s=check.seconds("start_s", 1.0, zero=True),
        backoff_s=check.seconds("backoff_s", 1.0),
        backoff_max_s=check.seconds("backoff_max_s", 60.0),
        max_retries=check.count("max_retries", 5),
        stop_signal=stop_signal,
        stop_timeout_s=check.seconds("stop_timeout_s", 10.0),
        depends_on=_names(check),
        autostart=check.boolean("autostart", default=True),
        log_max_bytes=check.count("log_max_bytes", 10 * 1024 * 1024, low=1024),
        log_backups=check.count("log_backups", 5),
    )
    if config.backoff_max_s < config.backoff_s:
        check.complain("backoff_max_s", f"must be at least backoff_s ({config.backoff_s:g})")
    if name in config.depends_on:
        check.complain("depends_on", "must not name the service itself")
    return (None, check.problems) if check.problems else (config, [])


def _command(check: _Checker, *, shell: bool) -> tuple[str, ...]:
    value = check.table.get("command")
    if shell:
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            check.complain("command", "must be a non-empty string with shell = true")
            return ("true",)
        return (value,)
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            check.complain("command", f"cannot be split into arguments ({exc})")
            return ("true",)
    if (
        not isinstance(value, list)
        or not 0 < len(value) <= MAX_ARGS
        or not all(isinstance(arg, str) and "\0" not in arg for arg in value)
        or not value[0]
    ):
        check.complain("command", f"must be a non-empty list of at most {MAX_ARGS} strings, or a string")
        return ("true",)
    return tuple(value)


def _environment(check: _Checker) -> dict[str, str]:
    value = check.table.get("env", {})
    ok = isinstance(value, Mapping) and len(value) <= MAX_ENV
    if not ok or not all(
        isinstance(k, str) and k and "=" not in k and "\0" not in k and isinstance(v, str) and "\0" not in v
        for k, v in value.items()
    ):
        check.complain("env", f"must be a table of at most {MAX_ENV} names (no '=') to strings")
        return {}
    return dict(value)


def _account(check: _Checker, euid: int) -> tuple[str | None, str | None]:
    user, group = check.text("user"), check.text("group")
    if user is not None:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            check.complain("user", "must name an account of this system")
            user = None
        else:
            if euid not in (0, entry.pw_uid):
                check.complain("user", "needs the daemon to run as root (or name the daemon's own account)")
    elif euid == 0:
        check.problems.append(
            f"{check.prefix} user is missing: a daemon running as root needs the account to run it as"
            ' (write user = "root" to run it as root)'
        )
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            check.complain("group", "must name a group of this system")
            group = None
        else:
            if euid != 0 and gid != os.getegid():
                check.complain("group", "needs the daemon to run as root (or name the daemon's own group)")
    return user, group


def _signal_name(check: _Checker) -> str:
    value = check.table.get("stop_signal", "SIGTERM")
    if isinstance(value, str):
        candidate = value.upper() if value.upper().startswith("SIG") else f"SIG{value.upper()}"
        if candidate in signal.Signals.__members__ and candidate not in {"SIGKILL", "SIGSTOP"}:
            return candidate
    check.complain("stop_signal", "must be a signal name such as TERM, INT, QUIT, HUP (not KILL or STOP)")
    return "SIGTERM"


def _names(check: _Checker) -> tuple[str, ...]:
    value = check.table.get("depends_on", [])
    if not isinstance(value, list) or not all(isinstance(v, str) and NAME_PATTERN.fullmatch(v) for v in value):
        check.complain("depends_on", "must be a list of service names")
        return ()
    return tuple(dict.fromkeys(value))


def start_order(services: Iterable[ServiceConfig], source: str) -> tuple[list[ServiceConfig], list[str]]:
    """``services`` ordered so that each follows those it depends on (ties by name), or the mistakes.

    A dependency on a name that is not declared, and every cycle, is one line naming it.
    """
    by_name = {service.name: service for service in services}
    problems = [
        f"{source}: [services.{service.name}] depends_on names {dep!r}, which is not a declared service"
        for service in by_name.values()
        for dep in service.depends_on
        if dep not in by_name
    ]
    ordered: list[ServiceConfig] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done or name not in by_name:
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name) :], name]
            problems.append(f"{source}: [services] depends_on has a cycle: {' -> '.join(cycle)}")
            return
        visiting.append(name)
        for dep in sorted(by_name[name].depends_on):
            visit(dep)
        visiting.pop()
        if name not in done:
            done.add(name)
            ordered.append(by_name[name])

    for name in sorted(by_name):
        visit(name)
    return ordered, problems


def clean_environment(config: ServiceConfig, home: str, user: str, mark: str) -> dict[str, str]:
    """The environment a service starts with: a few basics, then its ``env`` over them, then its mark.

    Nothing of the daemon's own environment leaks in (no ``NUA_*``, no secrets): the
    basics are ``PATH`` (:data:`DEFAULT_PATH`), ``HOME``, ``USER``, ``LOGNAME`` and
    ``LANG=C.UTF-8``. ``NUA_SERVICE`` is set last to ``mark`` (the service's name and
    the daemon's instance): it is how the daemon recognises a service's descendants
    that left its process group, and only its own.
    """
    env = {"PATH": DEFAULT_PATH, "HOME": home, "USER": user, "LOGNAME": user, "LANG": "C.UTF-8"}
    env.update(config.env)
    env[SERVICE_MARK] = mark
    return env


SERVICE_MARK = "NUA_SERVICE"
