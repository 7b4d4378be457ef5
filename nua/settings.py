"""Settings: packaged defaults < a config file < ``NUA_<SECTION>_<KEY>`` variables.

The defaults live in ``params.toml`` (shipped inside the package) and the
dataclasses below are the schema: each key's type and, beside it, the rule its
value must meet (``Annotated[int, Between(1, 65535)]``, see
:mod:`nua.setting_rules`); a test checks that the file and the classes agree.
Every mistake an operator can make (an unknown key, a wrong type, a value that
makes no sense, keys that contradict each other, an unreadable file) becomes a
:class:`SettingsError` with one line per mistake naming the key and where its
value came from, at load, never a traceback or a failure later on.

Files are read with the standard library's ``tomllib`` (TOML 1.0); the ``toml``
package only writes the effective settings back out (:func:`effective_toml`). The
``nua`` CLI loads these settings to find the daemon, so this module imports
little: SQLAlchemy and OpenSSL only for the deep rules, ``toml`` only to write.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from nua import paths
from nua.setting_rules import (
    AUTH_MODES,
    ENDPOINT,
    HOST,
    HTTP_OFF,
    HTTP_PORT,
    KEEP_DAYS,
    LOG_LEVELS,
    PORT,
    SQLITE_SYNCHRONOUS,
    AbsolutePath,
    AtMost,
    AuthFitsEndpoint,
    Between,
    CrossRule,
    DbUrl,
    HostNames,
    HttpFitsAddress,
    Key,
    ModuleNames,
    OneOf,
    OptionalPath,
    PowerOfTwo,
    Rule,
    ScryptAccepted,
    Seconds,
    Shown,
    name,
    plain_sqlite_url,
)

if TYPE_CHECKING:
    # Loaded where a file has [jobs] or [services] tables (checked_jobs, checked_services):
    # a start without them does not pay for their rules (10 ms).
    from nua.job_settings import JobConfig
    from nua.service_settings import ServiceConfig

ENV_PREFIX = "NUA_"
CONFIG_ENV = "NUA_CONFIG"
# Where a value came from when no file or variable set it.
DEFAULTS_SOURCE = "default (params.toml)"


class SettingsError(Exception):
    """Settings that cannot be used: one line per problem, each naming the key and its source."""


# What replaces a secret in a shown URL (SQLAlchemy's own mask for the password).
MASK = "***"
# Query parameters whose value is a secret, by the words in their name: libpq's
# password, sslpassword (and any *password*), MySQL drivers' passwd, and tokens,
# keys and credentials of other drivers; matched case-insensitively.
SECRET_URL_PARAMETERS = ("pass", "pwd", "secret", "token", "key", "credential", "auth")


def mask_url(url: str) -> str:
    """``url`` with every password masked, fit for logs, status, RPC replies and ``config``.

    Masked wherever it sits: the user-info part (``user:secret@host``) and any
    query parameter that carries a secret (see :data:`SECRET_URL_PARAMETERS`;
    libpq takes ``?password=`` and ``?sslpassword=``, other drivers ``passwd``,
    tokens, keys). A URL SQLAlchemy cannot parse is masked the same way by pattern.
    A plain SQLite URL (:func:`~nua.setting_rules.plain_sqlite_url`) holds no secret
    and is shown as it is, without importing SQLAlchemy.
    """
    if plain_sqlite_url(url):
        return url
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - only the daemon needs it, not the CLI
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # not a URL, or a bad part (a port that is not a number)
        return _mask_unparsed_url(url)
    query = {key: (MASK if _secret_parameter(key) else value) for key, value in parsed.query.items()}
    # The URL form quotes the mask ("%2A%2A%2A"): shown as the password's is.
    return parsed.set(query=query).render_as_string(hide_password=True).replace("=%2A%2A%2A", f"={MASK}")


def _secret_parameter(parameter: str) -> bool:
    lowered = parameter.lower()
    return any(word in lowered for word in SECRET_URL_PARAMETERS)


def _mask_unparsed_url(url: str) -> str:
    """Mask by pattern what :func:`mask_url` masks by parsing: user-info and secret parameters.

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


# -- the schema: each key's type and its rule ------------------------------------------------

COUNT = Between(0)
AT_LEAST_ONE = Between(1)
# A message, reply or value bound below this cannot carry a user_add or one page.
MESSAGE_BYTES = Between(1024)
SECONDS = Seconds()
PATH = AbsolutePath()


@dataclass(frozen=True)
class ServerSettings:
    """[server]: the daemon process: pid file, exit flag, log file and level, RPC server, how long a stop may take."""

    pid_file: Annotated[str, PATH]
    exit_flag: Annotated[str, PATH]
    log_file: Annotated[str, PATH]
    log_level: Annotated[str, OneOf(LOG_LEVELS, "a log level")]
    start_zmq_server: bool
    stop_timeout_s: Annotated[float, SECONDS]


@dataclass(frozen=True)
class ZmqSettings:
    """[zmq]: the RPC endpoint, its limits and its authentication (CURVE keys)."""

    address: Annotated[str, HOST]
    # 0: any free port, found by clients through the daemon's runtime record.
    port: Annotated[int, PORT]
    endpoint: Annotated[str, ENDPOINT]
    max_clients: Annotated[int, AT_LEAST_ONE]
    # ZeroMQ reads 0 as "no limit": at least one reply is queued per client.
    send_hwm: Annotated[int, AT_LEAST_ONE]
    # "none" only where no other host can connect (AuthFitsEndpoint).
    auth: Annotated[str, OneOf(AUTH_MODES, "an authentication mode")]
    keys_dir: Annotated[str, PATH]
    client_key: Annotated[str, PATH]

    @property
    def curve(self) -> bool:
        """Whether clients must authenticate with a registered CURVE key."""
        return self.auth == "curve"

    @property
    def bind_endpoint(self) -> str:
        """The ZeroMQ endpoint the gateway binds and clients connect to."""
        return self.endpoint or f"tcp://{self.address}:{self.port}"


@dataclass(frozen=True)
class DbSettings:
    """[db]: the database, the DB writer's batches and limits, reconnecting after an outage."""

    # Not read by nua yet (the URL's dialect decides); kept so that existing files still load.
    backend: str
    url: Annotated[str, DbUrl(), Shown(mask_url)]
    sqlite_synchronous: Annotated[str, OneOf(SQLITE_SYNCHRONOUS, "a synchronous mode")]
    max_batch: Annotated[int, AT_LEAST_ONE]
    max_value_bytes: Annotated[int, AT_LEAST_ONE]
    reconnect_max_s: Annotated[float, SECONDS]

    @property
    def safe_url(self) -> str:
        """``url`` with every password masked (see :func:`mask_url`)."""
        return mask_url(self.url)


@dataclass(frozen=True)
class SecuritySettings:
    """[security]: the cost of password hashing (scrypt)."""

    scrypt_n: Annotated[int, PowerOfTwo()]
    scrypt_r: Annotated[int, AT_LEAST_ONE]
    scrypt_p: Annotated[int, AT_LEAST_ONE]


@dataclass(frozen=True)
class SupervisorSettings:
    """[supervisor]: the restart intensity of the actor tree."""

    # 0: the first crash stops the tree (OTP's intensity 0).
    max_restarts: Annotated[int, COUNT]
    max_seconds: Annotated[float, SECONDS]
    shutdown_timeout_s: Annotated[float, SECONDS]


@dataclass(frozen=True)
class RpcSettings:
    """[rpc]: calls: plugins, timeout, sizes, calls in flight, pages."""

    plugins: Annotated[list[str], ModuleNames()]
    call_timeout_s: Annotated[float, SECONDS]
    max_message_bytes: Annotated[int, MESSAGE_BYTES]
    hard_max_message_bytes: Annotated[int, MESSAGE_BYTES]
    max_reply_bytes: Annotated[int, MESSAGE_BYTES]
    max_in_flight: Annotated[int, AT_LEAST_ONE]
    max_in_flight_per_client: Annotated[int, AT_LEAST_ONE]
    page_size: Annotated[int, AT_LEAST_ONE]
    max_page_size: Annotated[int, AT_LEAST_ONE]


@dataclass(frozen=True)
class AuditSettings:
    """[audit]: how long audit records are kept."""

    # Days an audit record is kept (the DB writer removes older ones hourly); 0: forever.
    keep_days: Annotated[int, KEEP_DAYS]


@dataclass(frozen=True)
class EventsSettings:
    """[events]: the event stream's memory and its waiting readers."""

    # Events kept in memory for readers that fell behind; long-poll reads waiting at once.
    history: Annotated[int, Between(1, 1_000_000)]
    max_waiting: Annotated[int, Between(1, 65536)]


@dataclass(frozen=True)
class HttpSettings:
    """[http]: the HTTP server and web console (off by default)."""

    address: Annotated[str, HOST]
    # -1: no HTTP server (the default); 0: any free port (in the runtime record); else the port.
    port: Annotated[int, HTTP_PORT]
    tls_cert: Annotated[str, OptionalPath()]
    tls_key: Annotated[str, OptionalPath()]
    # A non-loopback address needs TLS, or this (a TLS proxy in front; HttpFitsAddress).
    behind_proxy: bool
    # Names a Host header may carry besides the address (and localhost's names on loopback).
    allowed_hosts: Annotated[list[str], HostNames()]
    max_clients: Annotated[int, AT_LEAST_ONE]
    # A console session lasts this long at most (and never past its token's expiry).
    session_s: Annotated[float, SECONDS]

    @property
    def enabled(self) -> bool:
        """Whether the daemon runs its HTTP server."""
        return self.port != HTTP_OFF

    @property
    def tls(self) -> bool:
        """Whether it serves HTTPS."""
        return bool(self.tls_cert)


@dataclass(frozen=True)
class CronSettings:
    """[cron]: how long cron runs are kept."""

    # Days a cron job's run is kept in its history (the cron actor removes older ones hourly); 0: forever.
    keep_days: Annotated[int, KEEP_DAYS]


@dataclass(frozen=True)
class DebugSettings:
    """[debug]: what only development and tests turn on."""

    allow_fault_injection: bool
    tracebacks: bool
    test_methods: bool


@dataclass(frozen=True)
class Settings:
    """Every section, checked; where each value came from (``origins``); the services and jobs tables."""

    server: ServerSettings
    zmq: ZmqSettings
    db: DbSettings
    security: SecuritySettings
    supervisor: SupervisorSettings
    rpc: RpcSettings
    audit: AuditSettings
    events: EventsSettings
    http: HttpSettings
    cron: CronSettings
    debug: DebugSettings
    # The [jobs.NAME] tables of the file, checked (see nua.job_settings).
    jobs: tuple[JobConfig, ...] = ()
    # The [services.NAME] tables of the file, checked, in start order (see nua.service_settings).
    services: tuple[ServiceConfig, ...] = ()
    # Where the overrides came from, for messages and for SIGHUP's re-read.
    config_file: Path | None = field(default=None, compare=False)
    # Where each key's value came from ("section.key" -> the packaged defaults, the file, or the variable).
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def services_log_dir(self) -> Path:
        """``{log_dir}/services``: each service's output file, beside the daemon's own log file."""
        return Path(self.server.log_file).parent / "services"

    @property
    def jobs_log_dir(self) -> Path:
        """``{log_dir}/jobs``: each command job's output file, beside the services' directory."""
        return Path(self.server.log_file).parent / "jobs"

    @property
    def services_record_dir(self) -> Path:
        """Where each running service process is recorded, beside the pid file (the private runtime directory)."""
        return Path(self.server.pid_file).parent / "services"


# What several keys must be together.
CROSS_RULES: tuple[CrossRule, ...] = (
    AtMost(("rpc", "max_message_bytes"), ("rpc", "hard_max_message_bytes")),
    AtMost(("rpc", "page_size"), ("rpc", "max_page_size")),
    AtMost(("rpc", "max_in_flight_per_client"), ("rpc", "max_in_flight")),
    ScryptAccepted(),
    AuthFitsEndpoint(),
    HttpFitsAddress(),
)

# The section of tables, one per service, each checked by nua.service_settings rather than the schema.
SERVICES = "services"
# Likewise the cron jobs, checked by nua.job_settings.
JOBS = "jobs"
_SECTIONS: dict[str, type[Any]] = {
    section: hint
    # The tables' types are not loaded here (see the imports): they are not sections.
    for section, hint in typing.get_type_hints(Settings, localns={"JobConfig": Any, "ServiceConfig": Any}).items()
    if section not in {"config_file", "origins", SERVICES, JOBS}
}
# Every section of the configuration: no application setting (``setting_set``) may use one as its prefix.
CONFIGURATION_SECTIONS: frozenset[str] = frozenset({*_SECTIONS, SERVICES, JOBS})


def _split(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    """A key's type hint as its type and, from the ``Annotated`` beside it, its rules (and how it is shown)."""
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        return base, tuple(extras)
    return hint, ()


def _schema() -> tuple[dict[str, dict[str, Any]], dict[Key, tuple[Any, ...]]]:
    """Each section's keys and their types, and each key's rules: what files and variables are checked against."""
    types: dict[str, dict[str, Any]] = {section: {} for section in _SECTIONS}
    extras: dict[Key, tuple[Any, ...]] = {}
    for section, cls in _SECTIONS.items():
        for key, hint in typing.get_type_hints(cls, include_extras=True).items():
            types[section][key], extras[(section, key)] = _split(hint)
    return types, extras


_KEY_TYPES, _KEY_EXTRAS = _schema()


def _rules(key: Key) -> list[Rule]:
    return [extra for extra in _KEY_EXTRAS[key] if isinstance(extra, Rule)]


def _show(key: Key, value: Any) -> Any:
    """``value`` as messages and ``config`` show it: through the key's :class:`Shown`, if any."""
    for extra in _KEY_EXTRAS[key]:
        if isinstance(extra, Shown):
            return extra.show(value)
    return value


# -- reading the sources ---------------------------------------------------------------------


def _type_problem(section: str, key: str, value: Any) -> tuple[Any, str | None]:
    """``value`` as the key's type (an integer is a valid float), or what was wrong with it."""
    expected = _KEY_TYPES[section][key]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if typing.get_origin(expected) is list:
        (item,) = typing.get_args(expected)
        ok = isinstance(value, list) and all(isinstance(v, item) for v in value)
        wanted = f"a list of {item.__name__}"
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        wanted = "an integer"
    else:
        ok = isinstance(value, expected)
        wanted = {bool: "true or false", float: "a number", str: "a string"}.get(expected, str(expected))
    return value, None if ok else f"must be {wanted}"


# The words a boolean variable may say, as systemd and most tools accept them.
_BOOLEAN_WORDS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def _parse_env_value(section: str, key: str, raw: str) -> tuple[Any, str | None]:
    """A variable's text as the key's type, or what was wrong with it."""
    expected = _KEY_TYPES[section][key]
    if expected is str:
        return raw, None
    if typing.get_origin(expected) is list:
        return [item.strip() for item in raw.split(",") if item.strip()], None
    if expected is bool:
        word = raw.strip().lower()
        return (_BOOLEAN_WORDS[word], None) if word in _BOOLEAN_WORDS else (raw, "must be true or false")
    try:
        return expected(raw), None
    except ValueError:
        return raw, f"must be {'an integer' if expected is int else 'a number'}"


@dataclass
class _Sources:
    """The values gathered so far, where each came from, and what was wrong on the way."""

    values: dict[str, dict[str, Any]] = field(default_factory=lambda: {s: {} for s in _SECTIONS})
    origins: dict[Key, str] = field(default_factory=dict)
    # Each source by the order it was merged in: defaults, then the file, then each variable.
    order: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # Each [services.NAME] table as read, and the file it came from.
    services: dict[str, tuple[Any, str]] = field(default_factory=dict)
    # Each [jobs.NAME] table as read, and the file it came from.
    jobs: dict[str, tuple[Any, str]] = field(default_factory=dict)

    def record(self, section: str, key: str, value: Any, source: str) -> None:
        self.values[section][key] = value
        self.origins[(section, key)] = source
        self.order.setdefault(source, len(self.order))

    def latest(self, keys: tuple[Key, ...]) -> str:
        """The source that had the last word among ``keys``: the environment, else the file, else the defaults."""
        return max((self.origins[key] for key in keys), key=self.order.__getitem__)

    def complain(self, source: str, text: str) -> None:
        self.problems.append(f"{source}: {text}")

    def merge(self, overrides: dict[str, Any], source: str) -> None:
        for section, values in overrides.items():
            if section == SERVICES and source != DEFAULTS_SOURCE:
                self.merge_services(values, source)
            elif section == JOBS and source != DEFAULTS_SOURCE:
                self.merge_jobs(values, source)
            elif section not in _SECTIONS:
                self.complain(source, f"unknown section [{section}] (known: {', '.join(_SECTIONS)})")
            elif not isinstance(values, dict):
                self.complain(source, f"[{section}] must be a table")
            else:
                for key, value in values.items():
                    if key not in _KEY_TYPES[section]:
                        self.complain(source, f"unknown key [{section}] {key}")
                        continue
                    typed, problem = _type_problem(section, key, value)
                    if problem is None:
                        self.record(section, key, typed, source)
                    else:
                        self.complain(source, f"[{section}] {key} {problem}, got {value!r}")

    def merge_services(self, tables: Any, source: str) -> None:
        if not isinstance(tables, dict):
            self.complain(source, f"[{SERVICES}] must hold one table per service ([{SERVICES}.NAME])")
            return
        for service, table in tables.items():
            self.services[service] = (table, source)

    def merge_jobs(self, tables: Any, source: str) -> None:
        if not isinstance(tables, dict):
            self.complain(source, f"[{JOBS}] must hold one table per job ([{JOBS}.NAME])")
            return
        for job, table in tables.items():
            self.jobs[job] = (table, source)

    def checked_jobs(self) -> tuple[JobConfig, ...]:
        """The cron jobs, each checked by meaning, by name; their mistakes added to :attr:`problems`."""
        if not self.jobs:
            return ()
        from nua.job_settings import parse_job  # noqa: PLC0415 - see the imports

        checked = []
        for job, (table, source) in sorted(self.jobs.items()):
            config, problems = parse_job(job, table, source)
            self.problems += problems
            if config is not None:
                checked.append(config)
        return tuple(checked)

    def checked_services(self) -> tuple[ServiceConfig, ...]:
        """The services, each checked by meaning, in start order; their mistakes added to :attr:`problems`."""
        if not self.services:
            return ()
        from nua.service_settings import parse_service, start_order  # noqa: PLC0415 - see the imports

        checked = []
        for service, (table, source) in self.services.items():
            config, problems = parse_service(service, table, source)
            self.problems += problems
            if config is not None:
                checked.append(config)
        source = next(iter({source for _, source in self.services.values()}), DEFAULTS_SOURCE)
        ordered, problems = start_order(checked, source)
        self.problems += problems
        return tuple(ordered)

    def merge_environment(self, env: Mapping[str, str]) -> None:
        for variable, raw in env.items():
            if not variable.startswith(ENV_PREFIX) or variable == CONFIG_ENV:
                continue
            section, _, key = variable[len(ENV_PREFIX) :].lower().partition("_")
            if section not in _SECTIONS:
                continue  # other NUA_* variables (NUA_TEST_PG_URL, ...) are not settings
            source = f"environment {variable}"
            if key not in _KEY_TYPES[section]:
                self.complain("environment", f"unknown setting {variable} (no key [{section}] {key})")
                continue
            value, problem = _parse_env_value(section, key, raw)
            if problem is None:
                value, problem = _type_problem(section, key, value)
            if problem is None:
                self.record(section, key, value, source)
            else:
                self.complain(source, f"[{section}] {key} {problem}, got {raw!r}")

    def fail_if_any(self) -> None:
        if self.problems:
            raise SettingsError("\n".join(self.problems))


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
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
    return paths.DEFAULTS_FILE.read_text(encoding="utf-8")


def _expand(values: dict[str, dict[str, Any]], env: typing.Mapping[str, str]) -> None:
    dirs = paths.private_dirs(env)
    for section in values.values():
        for key, value in section.items():
            if isinstance(value, str):
                section[key] = paths.expand(value, dirs)


def _gather(config_file: str | Path | None, env: Mapping[str, str]) -> tuple[_Sources, Path | None]:
    """Every key's value and origin from the defaults, the file and the environment, type-checked."""
    sources = _Sources()
    sources.merge(_read_toml(defaults_text(), DEFAULTS_SOURCE), DEFAULTS_SOURCE)
    missing = [name((s, k)) for s in _SECTIONS for k in _KEY_TYPES[s] if k not in sources.values[s]]
    if missing:
        sources.complain(DEFAULTS_SOURCE, f"missing {', '.join(missing)}")
    path_text = str(config_file) if config_file is not None else env.get(CONFIG_ENV, "")
    path = Path(path_text).expanduser() if path_text else None
    if path is not None:
        sources.merge(_read_file(path), str(path))
    sources.merge_environment(env)
    sources.fail_if_any()
    _expand(sources.values, env)
    return sources, path


def _check_meaning(sources: _Sources, *, deep: bool) -> tuple[tuple[ServiceConfig, ...], tuple[JobConfig, ...]]:
    """Every key's rule, then the rules across keys whose keys all passed, then the services and jobs; all at once.

    Returns the services, checked and in start order, and the jobs.
    """
    failed: set[Key] = set()
    for key in _KEY_EXTRAS:
        value = sources.values[key[0]][key[1]]
        for rule in _rules(key):
            if rule.deep and not deep:
                continue
            complaint = rule.complaint(value)
            if complaint is not None:
                failed.add(key)
                sources.complain(sources.origins[key], f"{name(key)} must {complaint}, got {_show(key, value)!r}")
                break
    values = {key: sources.values[key[0]][key[1]] for key in _KEY_EXTRAS}
    for cross in CROSS_RULES:
        if (cross.deep and not deep) or failed.intersection(cross.keys):
            continue
        complaint = cross.complaint(values, sources.origins)
        if complaint is not None:
            sources.complain(sources.latest(cross.keys), complaint)
    services = sources.checked_services()
    jobs = sources.checked_jobs()
    sources.fail_if_any()
    return services, jobs


def _build(
    sources: _Sources, path: Path | None, declared: tuple[tuple[ServiceConfig, ...], tuple[JobConfig, ...]]
) -> Settings:
    sections = {s: cls(**sources.values[s]) for s, cls in _SECTIONS.items()}
    services, jobs = declared
    origins = {f"{section}.{key}": source for (section, key), source in sources.origins.items()}
    origins.update({f"{SERVICES}.{service}": source for service, (_, source) in sources.services.items()})
    origins.update({f"{JOBS}.{job}": source for job, (_, source) in sources.jobs.items()})
    return Settings(**sections, services=services, jobs=jobs, config_file=path, origins=origins)


def load(
    config_file: str | Path | None = None, environ: typing.Mapping[str, str] | None = None, *, deep: bool = True
) -> Settings:
    """Build the settings from the defaults, ``config_file`` (or ``$NUA_CONFIG``) and the environment.

    Raises :class:`SettingsError` listing every problem. ``deep=False`` skips the
    rules that import or run the library behind a value (the database URL's
    parser and driver, the scrypt probe): for what only finds a daemon (``nua``,
    ``status``, ``stop``) and must be quick. ``start``, the daemon's reload and
    ``nua-orchestrator config`` keep them.
    """
    env = os.environ if environ is None else environ
    sources, path = _gather(config_file, env)
    return _build(sources, path, _check_meaning(sources, deep=deep))


def configuration(loaded: Settings) -> list[dict[str, Any]]:
    """Every key of ``loaded`` as ``{section, key, value, source}``, in ``params.toml``'s order, services and jobs last.

    What ``nua-orchestrator config`` prints and ``sys_config`` answers: the
    configuration as it is, each value with where it came from (the packaged
    default, the file, or the variable); the database URL's password masked, as
    every ``env`` value of a service or a job (``API_TOKEN = "***"``: the names are
    kept, the values are where a process is given its secrets) and a call job's
    params named as secrets (``{password = "***"}``), so that it is safe to show
    anyone who may see the configuration.
    """
    rows = [
        {
            "section": section,
            "key": key,
            "value": _show((section, key), getattr(getattr(loaded, section), key)),
            "source": loaded.origins.get(f"{section}.{key}", DEFAULTS_SOURCE),
        }
        for section in _SECTIONS
        for key in _KEY_TYPES[section]
    ]
    tables: list[tuple[str, ServiceConfig | JobConfig]] = [(SERVICES, service) for service in loaded.services]
    tables += [(JOBS, job) for job in loaded.jobs]
    rows += [
        {
            "section": f"{kind}.{table.name}",
            "key": None,
            "value": shown_table(table.as_table()),
            "source": loaded.origins.get(f"{kind}.{table.name}", str(loaded.config_file)),
        }
        for kind, table in tables
    ]
    return rows


def shown_table(table: dict[str, Any]) -> dict[str, Any]:
    """A service's or job's table with each ``env`` value shown as ``***``, and a call's secret-named params.

    What anyone who may read the table sees of it (``nua config``, ``service_get``): the names, never the values.
    """
    masked_env(table)
    if "params" in table:
        table["params"] = _params_masked(table["params"])
    return table


def masked_env(table: dict[str, Any]) -> dict[str, Any]:
    """``table`` (a service's or job's) with each ``env`` value replaced by ``***``, the names kept."""
    if isinstance(table.get("env"), Mapping):
        table["env"] = dict.fromkeys(table["env"], MASK)
    return table


def _params_masked(value: Any) -> Any:
    """``value`` with the value under each object key naming a secret (``password``, ``api_token``) as ``***``."""
    if isinstance(value, Mapping):
        return {
            key: MASK if isinstance(key, str) and _secret_parameter(key) else _params_masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_params_masked(item) for item in value]
    return value


def effective_toml(config_file: str | Path | None = None, environ: typing.Mapping[str, str] | None = None) -> str:
    """The effective settings as TOML, each key commented with where its value came from.

    As ``git config --show-origin``: the packaged default, the file, or the
    variable. Checked as :func:`load` checks them (deep rules included); the
    database URL's password is masked, so the text is safe to paste anywhere.
    """
    loaded = load(config_file, environ)
    path = loaded.config_file
    return configuration_toml(
        configuration(loaded),
        "# nua's effective settings: the packaged defaults (params.toml), then "
        + (f"the file {path}," if path is not None else "no file (neither --config nor NUA_CONFIG),"),
    )


def configuration_toml(rows: Sequence[Mapping[str, Any]], first_line: str) -> str:
    """:func:`configuration`'s rows as TOML, each key followed by its source as a comment."""
    import toml  # noqa: PLC0415 - only the config commands write TOML

    lines = [
        first_line,
        "# then NUA_<SECTION>_<KEY> variables. Each key is followed by where its value came from;",
        "# passwords in URLs and the env values of services and jobs are shown as ***.",
    ]
    sections: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        sections.setdefault(str(row["section"]), []).append(row)
    for section, keys in sections.items():
        if keys[0]["key"] is None:  # a service or a job: its whole table, from one source
            kind, _, name = section.partition(".")
            # Dumped under its own name, so that a nested table (env) is [services.NAME.env], not [env].
            table = toml.dumps({kind: {name: keys[0]["value"]}}).strip().splitlines()
            header = f"[{section}]  # {keys[0]['source']}"
            lines += ["", *([header, *table[1:]] if table[0] == f"[{section}]" else [header, *table])]
            continue
        rendered = [(toml.dumps({row["key"]: row["value"]}).strip(), row["source"]) for row in keys]
        width = max(len(text) for text, _ in rendered)
        lines += ["", f"[{section}]"]
        lines += [f"{text:<{width}}  # {source}" for text, source in rendered]
    return "\n".join(lines) + "\n"


PRIVATE_MODE = 0o700


def private_dir(path: str | Path, *, owner_only: bool = False) -> Path:
    """Make ``path`` usable for the daemon's own files; ``SettingsError`` naming the path if it is unsafe.

    ``owner_only``: the directory must also be ours and closed to everyone else
    (no group or other bits: 0700), for what must be unreachable by other
    accounts from the moment it exists (an ``ipc://`` socket).

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
    if owner_only:
        _check_owner_only(directory)
    return directory


def _check_owner_only(directory: Path) -> None:
    info = directory.stat()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.geteuid() or mode & 0o077:
        msg = (
            f"{directory} is open to other accounts (mode {mode:04o}, uid {info.st_uid}): it must be a directory of"
            " this account's with mode 0700 (e.g. ipc://{runtime_dir}/nua.sock)"
        )
        raise SettingsError(msg)


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
    "CONFIGURATION_SECTIONS",
    "CONFIG_ENV",
    "CROSS_RULES",
    "DEFAULTS_SOURCE",
    "AuditSettings",
    "DbSettings",
    "DebugSettings",
    "RpcSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "SupervisorSettings",
    "ZmqSettings",
    "configuration",
    "configuration_toml",
    "defaults_text",
    "effective_toml",
    "load",
    "mask_url",
    "private_dir",
]
