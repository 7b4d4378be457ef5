"""Settings: packaged defaults < a config file < ``NUA_<SECTION>_<KEY>`` variables.

The defaults live in ``params.toml`` (shipped inside the package) and are also the
schema: the dataclasses below name every key and its type, and a test checks that
both agree. Every mistake an operator can make (an unknown key, a wrong type, an
unreadable file) becomes a :class:`SettingsError` naming the key and where it came
from, never a traceback.
"""

from __future__ import annotations

import os
import re
import stat
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import toml

ENV_PREFIX = "NUA_"
CONFIG_ENV = "NUA_CONFIG"


class SettingsError(Exception):
    """A setting is unknown, of the wrong type, or its file cannot be read."""


@dataclass(frozen=True)
class ServerSettings:
    pid_file: str
    exit_flag: str
    log_file: str
    log_level: str
    start_zmq_server: bool
    stop_timeout_s: float


@dataclass(frozen=True)
class ZmqSettings:
    address: str
    port: int
    endpoint: str
    max_clients: int
    send_hwm: int

    @property
    def bind_endpoint(self) -> str:
        """The ZeroMQ endpoint the gateway binds and clients connect to."""
        return self.endpoint or f"tcp://{self.address}:{self.port}"


@dataclass(frozen=True)
class DbSettings:
    backend: str
    url: str
    sqlite_synchronous: str
    max_batch: int
    max_value_bytes: int
    reconnect_max_s: float

    @property
    def safe_url(self) -> str:
        """``url`` with every password masked, fit for logs, status and RPC replies.

        Masked wherever it sits: the user-info part (``user:secret@host``) and any
        query parameter that carries a secret (see :data:`SECRET_URL_PARAMETERS`;
        libpq takes ``?password=`` and ``?sslpassword=``, other drivers ``passwd``,
        tokens, keys). A URL SQLAlchemy cannot parse is masked the same way by pattern.
        """
        from sqlalchemy.engine import make_url  # noqa: PLC0415 - only the daemon needs it, not the CLI
        from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

        try:
            url = make_url(self.url)
        except (ArgumentError, ValueError):  # not a URL, or a bad part (a port that is not a number)
            return _mask_unparsed_url(self.url)
        query = {key: (MASK if _secret_parameter(key) else value) for key, value in url.query.items()}
        # The URL form quotes the mask ("%2A%2A%2A"): shown as the password's is.
        return url.set(query=query).render_as_string(hide_password=True).replace("=%2A%2A%2A", f"={MASK}")


# What replaces a secret in a shown URL (SQLAlchemy's own mask for the password).
MASK = "***"
# Query parameters whose value is a secret, by the words in their name: libpq's
# password, sslpassword (and any *password*), MySQL drivers' passwd, and tokens,
# keys and credentials of other drivers; matched case-insensitively.
SECRET_URL_PARAMETERS = ("pass", "pwd", "secret", "token", "key", "credential", "auth")


def _secret_parameter(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_URL_PARAMETERS)


def _mask_unparsed_url(url: str) -> str:
    """Mask by pattern what :meth:`DbSettings.safe_url` masks by parsing: user-info and secret parameters.

    After ``scheme://``, everything from the first colon to the last ``@`` is the
    password as far as can be told: a password may hold any character (``/``,
    spaces, ``@`` unescaped) in a URL too broken to parse, so more may be masked
    than the password, never less.
    """
    scheme, separator, rest = url.partition("://")
    user_info, at, place = rest.rpartition("@")
    if separator and at and ":" in user_info:
        masked = f"{scheme}{separator}{user_info.split(':', 1)[0]}:{MASK}@{place}"
    else:
        masked = re.sub(r"([^\s:/@?#]+):[^\s/@?#]*@", rf"\1:{MASK}@", url)
    return re.sub(
        r"([?&;][^=&;#]*=)([^&;#]*)",
        lambda match: match.group(1) + (MASK if _secret_parameter(match.group(1)[1:-1]) else match.group(2)),
        masked,
    )


@dataclass(frozen=True)
class SecuritySettings:
    scrypt_n: int
    scrypt_r: int
    scrypt_p: int


@dataclass(frozen=True)
class SupervisorSettings:
    max_restarts: int
    max_seconds: float
    shutdown_timeout_s: float


@dataclass(frozen=True)
class RpcSettings:
    plugins: list[str]
    call_timeout_s: float
    max_message_bytes: int
    hard_max_message_bytes: int
    max_reply_bytes: int
    max_in_flight: int
    max_in_flight_per_client: int
    page_size: int
    max_page_size: int


@dataclass(frozen=True)
class DebugSettings:
    allow_fault_injection: bool
    tracebacks: bool


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    zmq: ZmqSettings
    db: DbSettings
    security: SecuritySettings
    supervisor: SupervisorSettings
    rpc: RpcSettings
    debug: DebugSettings
    # Where the overrides came from, for messages and for SIGHUP's re-read.
    config_file: Path | None = field(default=None, compare=False)


_SECTIONS: dict[str, type[Any]] = {
    name: hint for name, hint in typing.get_type_hints(Settings).items() if name != "config_file"
}
# Each section's keys and their types: the schema the files and variables are checked against.
_KEY_TYPES: dict[str, dict[str, Any]] = {name: typing.get_type_hints(cls) for name, cls in _SECTIONS.items()}
_VALIDATORS: dict[tuple[str, str], tuple[frozenset[str], str]] = {
    ("server", "log_level"): (frozenset({"debug", "info", "warning", "error"}), "a log level"),
    ("db", "sqlite_synchronous"): (frozenset({"OFF", "NORMAL", "FULL", "EXTRA"}), "a synchronous mode"),
}


def _check_value(section: str, key: str, value: Any, source: str) -> Any:
    expected = _KEY_TYPES[section][key]
    name = f"[{section}] {key}"
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    origin = typing.get_origin(expected)
    if origin is list:
        (item,) = typing.get_args(expected)
        ok = isinstance(value, list) and all(isinstance(v, item) for v in value)
        wanted = f"a list of {item.__name__}"
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        wanted = "an integer"
    else:
        ok = isinstance(value, expected)
        wanted = {bool: "true or false", float: "a number", str: "a string"}.get(expected, str(expected))
    if not ok:
        msg = f"{source}: {name} must be {wanted}, got {value!r}"
        raise SettingsError(msg)
    if (section, key) in _VALIDATORS:
        allowed, what = _VALIDATORS[(section, key)]
        if value not in allowed:
            msg = f"{source}: {name} must be {what} ({', '.join(sorted(allowed))}), got {value!r}"
            raise SettingsError(msg)
    return value


def _parse_env_value(section: str, key: str, raw: str, source: str) -> Any:
    expected = _KEY_TYPES[section][key]
    if expected is str:
        return raw
    if expected is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        msg = f"{source}: [{section}] {key} must be true or false, got {raw!r}"
        raise SettingsError(msg)
    if typing.get_origin(expected) is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    try:
        return expected(raw)
    except ValueError:
        kind = "an integer" if expected is int else "a number"
        msg = f"{source}: [{section}] {key} must be {kind}, got {raw!r}"
        raise SettingsError(msg) from None


def _merge(into: dict[str, dict[str, Any]], overrides: dict[str, Any], source: str) -> None:
    for section, values in overrides.items():
        if section not in _SECTIONS:
            msg = f"{source}: unknown section [{section}] (known: {', '.join(_SECTIONS)})"
            raise SettingsError(msg)
        if not isinstance(values, dict):
            msg = f"{source}: [{section}] must be a table"
            raise SettingsError(msg)
        for key, value in values.items():
            if key not in _KEY_TYPES[section]:
                msg = f"{source}: unknown key [{section}] {key}"
                raise SettingsError(msg)
            into[section][key] = _check_value(section, key, value, source)


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return dict(toml.loads(text))
    except toml.TomlDecodeError as exc:
        msg = f"{source}: not valid TOML: {exc}"
        raise SettingsError(msg) from None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read config file: {exc}"
        raise SettingsError(msg) from None
    return _read_toml(text, str(path))


def defaults_text() -> str:
    """The packaged ``params.toml``, the documented defaults."""
    return resources.files("nua").joinpath("params.toml").read_text(encoding="utf-8")


def _private_dirs(env: typing.Mapping[str, str]) -> dict[str, str]:
    """Per-user directories: the daemon never writes to a shared, world-writable path."""
    if os.geteuid() == 0:
        return {"runtime_dir": "/run/nua", "state_dir": "/var/lib/nua", "log_dir": "/var/log/nua"}
    runtime = env.get("XDG_RUNTIME_DIR")
    runtime_dir = f"{runtime}/nua" if runtime else f"/tmp/nua-{os.getuid()}"  # noqa: S108 - made 0700 and owner-checked
    state_home = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return {"runtime_dir": runtime_dir, "state_dir": f"{state_home}/nua", "log_dir": f"{state_home}/nua"}


def _expand(values: dict[str, dict[str, Any]], env: typing.Mapping[str, str]) -> None:
    dirs = _private_dirs(env)
    for section in values.values():
        for key, value in section.items():
            if isinstance(value, str) and "{" in value:
                section[key] = value.format_map(_KeepUnknown(dirs))


class _KeepUnknown(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def load(config_file: str | Path | None = None, environ: typing.Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the defaults, ``config_file`` (or ``$NUA_CONFIG``) and the environment."""
    env = os.environ if environ is None else environ
    values: dict[str, dict[str, Any]] = {s: {} for s in _SECTIONS}
    _merge(values, _read_toml(defaults_text(), "params.toml (defaults)"), "params.toml (defaults)")
    missing = [f"[{s}] {k}" for s in _SECTIONS for k in _KEY_TYPES[s] if k not in values[s]]
    if missing:
        msg = f"params.toml (defaults): missing {', '.join(missing)}"
        raise SettingsError(msg)

    path_text = str(config_file) if config_file is not None else env.get(CONFIG_ENV, "")
    path = Path(path_text).expanduser() if path_text else None
    if path is not None:
        _merge(values, _read_file(path), str(path))

    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section not in _SECTIONS:
            continue  # other NUA_* variables (NUA_TEST_PG_URL, ...) are not settings
        if key not in _KEY_TYPES[section]:
            msg = f"environment: unknown setting {name} (no key [{section}] {key})"
            raise SettingsError(msg)
        source = f"environment {name}"
        values[section][key] = _check_value(section, key, _parse_env_value(section, key, raw, source), source)

    _expand(values, env)
    sections = {s: cls(**values[s]) for s, cls in _SECTIONS.items()}
    return Settings(**sections, config_file=path)


PRIVATE_MODE = 0o700


def private_dir(path: str | Path) -> Path:
    """Make ``path`` usable for the daemon's own files; ``SettingsError`` naming the path if it is unsafe.

    Only the directories created here are made 0700 (each one, parents included,
    whatever the umask): an existing directory is never chmodded, since it may
    be shared (``/tmp``, ``/run``) and is not ours to tighten. Instead every
    existing directory on the way must be one that nobody else can change under
    us: owned by root or by us, and not writable by group or others unless it
    has the sticky bit (as ``/tmp``, where others cannot remove or rename our
    files). That is the rule PostgreSQL and supervisord live with for their
    socket and pid files in ``/tmp``, and OpenSSH's for ``StrictModes``.
    """
    # Textual, unlike resolve(): a symbolic link on the way must be seen to be checked.
    directory = Path(os.path.abspath(path))  # noqa: PTH100
    missing: list[Path] = []
    existing = directory
    while not existing.exists():
        missing.append(existing)
        existing = existing.parent
    _check_safe(existing, directory)
    for made in reversed(missing):
        try:
            made.mkdir(mode=PRIVATE_MODE)
        except FileExistsError:
            _check_safe(made, directory)  # someone else made it meanwhile: judged like any existing directory
            continue
        # The umask may have removed the owner's own bits; this directory is ours to set.
        made.chmod(PRIVATE_MODE)
    return directory


def _check_safe(directory: Path, target: Path) -> None:
    """Refuse ``directory`` (``target`` or one above it) if someone else could change it under us.

    ``target``, the configured place, must be writable by no one else (unless
    sticky); above it only world-writable directories without the sticky bit are
    refused, so that a group-writable ``/var/log`` (root:syslog on some systems)
    does not forbid creating ``/var/log/nua``.
    """
    uid = os.geteuid()
    for place in [*reversed(directory.parents), directory]:
        try:
            link = place.lstat()
            info = place.stat()
        except OSError as exc:
            msg = f"{place}: cannot check it: {exc.strerror}"
            raise SettingsError(msg) from None
        # A symbolic link is followed only if its owner is trusted (as the kernel's protected_symlinks).
        for owner in sorted({link.st_uid, info.st_uid}):
            if owner not in {0, uid}:
                msg = f"{place} belongs to uid {owner}, not to root or us (uid {uid}): refusing to use it"
                raise SettingsError(msg)
        if not stat.S_ISDIR(info.st_mode):
            msg = f"{place} is not a directory"
            raise SettingsError(msg)
        writable = info.st_mode & (0o022 if place == target else 0o002)
        if writable and not info.st_mode & stat.S_ISVTX:
            msg = (
                f"{place} is writable by {'others' if info.st_mode & 0o002 else 'its group'} without the sticky"
                f" bit (mode {stat.S_IMODE(info.st_mode):04o}): refusing to use it"
            )
            raise SettingsError(msg)


__all__ = [
    "CONFIG_ENV",
    "DbSettings",
    "DebugSettings",
    "RpcSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "SupervisorSettings",
    "ZmqSettings",
    "load",
    "private_dir",
]
