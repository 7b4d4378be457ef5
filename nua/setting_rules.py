"""What a setting's value must mean beyond its type: the rules ``nua.settings`` puts beside each key.

A rule is data in the schema: ``port: Annotated[int, Between(1, 65535)]`` says both
the key's type and which values make sense, so the settings classes read as one
table and a key cannot be added without deciding its rule. A rule's
``complaint(value)`` is ``None`` for a good value, else the words finishing
"``[section] key`` must ...", which the loader prefixes with where the value came
from (a file, ``environment NUA_…``): the one line an operator sees, at load,
instead of a failure later (``scrypt_n = 1000`` at the first ``user_add``, a port
past 65535 when ``stop`` builds its address).

Cross-key rules (:class:`AtMost`, :class:`ScryptAccepted`) read several keys.
*Deep* rules are about what only the daemon uses (the database URL, which
SQLAlchemy's parser and the driver are asked about, and scrypt's costs): a
client that needs only the endpoint skips them, so that neither SQLAlchemy's
import nor a setting changed since the daemon started stops it; the daemon never does.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any, ClassVar

from nua.endpoint import HIGHEST_PORT, port_number, tcp_parts

# A ``(section, key)`` pair, e.g. ``("zmq", "port")``.
Key = tuple[str, str]

# ZeroMQ's socket options (SNDHWM, MAXMSGSIZE's peers) and scrypt's ``maxmem`` are C ints.
C_INT_MAX = 2**31 - 1
# A timeout or interval longer than a day is a typo, and far longer ones overflow
# the C timeouts they end up in (a poll's milliseconds, a condition's wait).
DAY_S = 86400.0
# A Unix socket's path lives in ``sockaddr_un.sun_path`` (108 bytes with its NUL):
# ZeroMQ refuses a longer ``ipc://`` path at bind time with ENAMETOOLONG.
MAX_IPC_PATH_BYTES = 107
LOG_LEVELS = ("debug", "info", "warning", "error")
SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
AUTH_MODES = ("curve", "none")


def name(key: Key) -> str:
    """``[section] key``, as messages and ``params.toml`` spell a setting."""
    return f"[{key[0]}] {key[1]}"


class Rule:
    """What one key's value must be; subclasses say it in :meth:`complaint`.

    Plain slotted classes: a rule holds a bound or two, built once at import,
    and needs neither the equality nor the generated code of a dataclass.
    """

    __slots__ = ()
    # Deep rules import or run the library that will use the value (see the module's doc).
    deep: ClassVar[bool] = False

    def complaint(self, value: Any) -> str | None:
        """``None`` if ``value`` is acceptable, else what it must be ("be from 1 to 65535")."""
        raise NotImplementedError


class Shown:
    """How a key's value appears in messages and in ``nua-orchestrator config`` (a URL's password masked)."""

    __slots__ = ("show",)

    def __init__(self, show: Callable[[str], str]) -> None:
        self.show = show


class Between(Rule):
    """An integer from ``low`` to ``high``: a port, a count, a size."""

    __slots__ = ("high", "low")

    def __init__(self, low: int, high: int = C_INT_MAX) -> None:
        self.low, self.high = low, high

    def complaint(self, value: Any) -> str | None:
        return None if self.low <= value <= self.high else f"be from {self.low} to {self.high}"


class Seconds(Rule):
    """A timeout or an interval: above 0 and finite (NaN and infinity compare false with every bound)."""

    __slots__ = ("high",)

    def __init__(self, high: float = DAY_S) -> None:
        self.high = high

    def complaint(self, value: Any) -> str | None:
        if math.isfinite(value) and 0 < value <= self.high:
            return None
        return f"be a number of seconds above 0 and at most {self.high:g}"


class OneOf(Rule):
    """A word from a fixed set: a log level, a SQLite synchronous mode."""

    __slots__ = ("choices", "what")

    def __init__(self, choices: tuple[str, ...], what: str) -> None:
        self.choices, self.what = choices, what

    def complaint(self, value: Any) -> str | None:
        return None if value in self.choices else f"be {self.what} ({', '.join(self.choices)})"


class PowerOfTwo(Rule):
    """An integer power of two above 1, as scrypt's cost ``n`` must be."""

    def complaint(self, value: Any) -> str | None:
        return None if value > 1 and value & (value - 1) == 0 else "be a power of two above 1 (1024, 16384, ...)"


class AbsolutePath(Rule):
    """A file the daemon makes or reads, whatever its working directory (a daemon's is ``/``)."""

    def complaint(self, value: Any) -> str | None:
        return None if PurePath(value).is_absolute() and "\0" not in value else "be an absolute path"


class Host(Rule):
    """A host name, an address or an interface for ZeroMQ's ``tcp://HOST:PORT``."""

    def complaint(self, value: Any) -> str | None:
        return None if value and not any(c.isspace() or c in "/\0" for c in value) else "be a host name or address"


class Endpoint(Rule):
    """A ZeroMQ endpoint the daemon binds and clients connect to; empty means ``tcp://address:port``.

    ``tcp://HOST:PORT`` takes a port from 1 to 65535, or ``0`` / ``*`` for any
    free port (the daemon records the port it bound, see :mod:`nua.runtime`);
    ``ipc://`` takes an absolute path short enough for a Unix socket.
    """

    def complaint(self, value: Any) -> str | None:
        if value == "":
            return None
        scheme, _, rest = value.partition("://")
        parts = tcp_parts(value)
        if parts is not None:
            host, port = parts
            if host and (port == "*" or port_number(port) is not None) and Host().complaint(host) is None:
                return None
            return f"be tcp://HOST:PORT with PORT from 1 to {HIGHEST_PORT} (0 or * for any free port)"
        if scheme == "ipc":
            path_ok = PurePath(rest).is_absolute() and "\0" not in rest
            if path_ok and len(os.fsencode(rest)) <= MAX_IPC_PATH_BYTES:
                return None
            return f"be ipc:// and an absolute path of at most {MAX_IPC_PATH_BYTES} bytes"
        return "be a tcp://HOST:PORT or ipc:///path endpoint (or empty for tcp://address:port)"


class ModuleNames(Rule):
    """Importable module names (``a.b.c``), as ``[rpc] plugins`` lists them."""

    def complaint(self, value: Any) -> str | None:
        ok = all(part.isidentifier() for item in value for part in item.split("."))
        return None if ok else "be a list of module names (package.module)"


# A SQLite URL naming a file by a plain path (or none: memory), with nothing SQLAlchemy would
# decode or re-encode: no user-info, host, port, query, percent escape, nor a character
# outside these. SQLAlchemy's URL pattern matches every such string, its sqlite dialect is
# built in and its driver (sqlite3) is the standard library's, so such a URL is known to be
# good without importing SQLAlchemy (270 ms of CPU here), and renders as itself (no password
# to mask). tests/core/test_setting_rules.py holds this against SQLAlchemy's own answers.
_PLAIN_SQLITE_URL = re.compile(r"sqlite(\+pysqlite)?://(/[A-Za-z0-9_.~/-]*)?")


def plain_sqlite_url(url: str) -> bool:
    """Whether ``url`` is a plain SQLite URL (see ``_PLAIN_SQLITE_URL``), good without asking SQLAlchemy."""
    return _PLAIN_SQLITE_URL.fullmatch(url) is not None


class DbUrl(Rule):
    """A database URL SQLAlchemy parses, whose dialect it knows and whose driver is installed.

    Its complaints never quote the URL (it may hold a password): only the
    dialect and the driver's module. A plain SQLite URL is good without asking
    (:func:`plain_sqlite_url`) when the standard library has its ``sqlite3``.
    """

    deep: ClassVar[bool] = True

    def complaint(self, value: Any) -> str | None:
        if isinstance(value, str) and plain_sqlite_url(value) and _absolute_or_memory(value) and _has_sqlite3():
            return None
        from sqlalchemy.engine import make_url  # noqa: PLC0415 - deep: only the daemon pays for SQLAlchemy
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError  # noqa: PLC0415

        try:
            url = make_url(value)
        except (ArgumentError, ValueError):  # ValueError: a part SQLAlchemy converts, such as the port
            return "be a database URL SQLAlchemy can parse (dialect+driver://user:password@host:port/database)"
        try:
            dialect = url.get_dialect()
        except NoSuchModuleError:
            return f"name a database SQLAlchemy knows, not {url.drivername!r}"
        try:
            dialect.import_dbapi()
        except ImportError as exc:
            missing = exc.name or url.get_driver_name()
            if url.get_backend_name() == "postgresql":
                hint = "pip install 'nua[pg]' and use postgresql+psycopg://"
            else:
                hint = f"install the Python package of the {url.get_driver_name()} driver"
            return f"use an installed driver: {url.drivername} needs the module {missing}, which is missing ({hint})"
        database = url.database or ""
        a_file = url.get_backend_name() == "sqlite" and database not in {"", ":memory:"} and database[:5] != "file:"
        if a_file and not PurePath(os.path.expanduser(database)).is_absolute():  # noqa: PTH111 - text, not a file
            return "name its SQLite file by an absolute path (sqlite:////dir/nua.db): the daemon runs in /"
        return None


def _absolute_or_memory(plain_url: str) -> bool:
    # What follows "sqlite://" and one "/" is the database: none (memory), or an absolute path.
    database = plain_url.partition("://")[2][1:]
    return database == "" or database.startswith("/")


def _has_sqlite3() -> bool:
    try:
        import sqlite3  # noqa: F401, PLC0415 - the driver of every SQLite URL (1 ms; the daemon opens it anyway)
    except ImportError:
        return False
    return True


# How long audit records are kept: 0 keeps them forever; a century is past any policy (and far
# within what a ``timedelta`` of days can hold).
MAX_KEEP_DAYS = 36500
KEEP_DAYS = Between(0, MAX_KEEP_DAYS)

# The rules of the keys that say where the daemon listens.
HOST = Host()
# 0 is "any free port": the daemon writes the port it bound in its runtime record,
# where status, stop and nua find it (nua.runtime).
PORT = Between(0, HIGHEST_PORT)
# ``[http] port``: -1, the default, runs no HTTP server.
HTTP_OFF = -1
HTTP_PORT = Between(HTTP_OFF, HIGHEST_PORT)
ENDPOINT = Endpoint()


# -- rules across keys ---------------------------------------------------------------------------


class CrossRule:
    """What several keys must be together; ``keys`` are the ones it reads."""

    __slots__ = ()
    deep: ClassVar[bool] = False

    @property
    def keys(self) -> tuple[Key, ...]:
        """The keys it reads: a key that already failed its own rule skips this one."""
        raise NotImplementedError

    def complaint(self, values: Mapping[Key, Any], origins: Mapping[Key, str]) -> str | None:
        """``None`` if the values agree, else the whole sentence (naming every key) saying why not."""
        raise NotImplementedError


class AtMost(CrossRule):
    """``key`` must not exceed ``limit``: a default or page size within its largest, a share within the whole."""

    __slots__ = ("key", "limit")

    def __init__(self, key: Key, limit: Key) -> None:
        self.key, self.limit = key, limit

    @property
    def keys(self) -> tuple[Key, ...]:
        return (self.key, self.limit)

    def complaint(self, values: Mapping[Key, Any], origins: Mapping[Key, str]) -> str | None:
        if values[self.key] <= values[self.limit]:
            return None
        return (
            f"{name(self.key)} ({values[self.key]}) must be at most {name(self.limit)}"
            f" ({values[self.limit]}, from {origins[self.limit]})"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a ZeroMQ tcp host: a name, an address, ``*``, an interface) can only be reached locally."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # *, an interface or a name: other hosts may reach it


class AuthFitsEndpoint(CrossRule):
    """``[zmq] auth = "none"`` only where no other host can connect: an ``ipc://`` or loopback endpoint."""

    __slots__ = ()
    _KEYS: ClassVar[tuple[Key, ...]] = (("zmq", "auth"), ("zmq", "address"), ("zmq", "port"), ("zmq", "endpoint"))

    @property
    def keys(self) -> tuple[Key, ...]:
        return self._KEYS

    def complaint(self, values: Mapping[Key, Any], origins: Mapping[Key, str]) -> str | None:  # noqa: ARG002
        if values[("zmq", "auth")] != "none":
            return None
        endpoint = values[("zmq", "endpoint")] or f"tcp://{values[('zmq', 'address')]}:{values[('zmq', 'port')]}"
        parts = tcp_parts(endpoint)
        if parts is None or is_loopback(parts[0]):
            return None
        return (
            f'[zmq] auth = "none" is accepted only for an ipc:// or loopback endpoint, not {endpoint}:'
            ' any host could administer the daemon; use auth = "curve" (the default)'
        )


class OptionalPath(Rule):
    """An absolute path, or empty for none (``[http] tls_cert`` when there is no TLS)."""

    def complaint(self, value: Any) -> str | None:
        if value == "" or (PurePath(value).is_absolute() and "\0" not in value):
            return None
        return "be an absolute path, or empty"


class HostNames(Rule):
    """Host names or addresses a ``Host`` header may name (without a port)."""

    def complaint(self, value: Any) -> str | None:
        ok = all(item and not any(c.isspace() or c in "/\0:@" for c in item.strip("[]")) for item in value)
        return None if ok else "be a list of host names or addresses, without ports (nua.example.org, 192.0.2.7)"


class HttpFitsAddress(CrossRule):
    """The HTTP server on an address other hosts can reach serves TLS, or says it is ``behind_proxy``.

    ``tls_cert`` and ``tls_key`` go together. With the server off (``port = -1``) nothing is asked.
    """

    __slots__ = ()
    _KEYS: ClassVar[tuple[Key, ...]] = (
        ("http", "address"),
        ("http", "port"),
        ("http", "tls_cert"),
        ("http", "tls_key"),
        ("http", "behind_proxy"),
    )

    @property
    def keys(self) -> tuple[Key, ...]:
        return self._KEYS

    def complaint(self, values: Mapping[Key, Any], origins: Mapping[Key, str]) -> str | None:  # noqa: ARG002
        cert, key = values[("http", "tls_cert")], values[("http", "tls_key")]
        if bool(cert) != bool(key):
            return "[http] tls_cert and [http] tls_key go together: set both (TLS) or neither"
        address = values[("http", "address")]
        if values[("http", "port")] == HTTP_OFF or cert or values[("http", "behind_proxy")] or is_loopback(address):
            return None
        return (
            f"[http] address {address!r} can be reached from other hosts: set [http] tls_cert and tls_key,"
            " or behind_proxy = true when a TLS proxy on this host forwards to it (then use a loopback address)"
        )


def scrypt_maxmem(n: int, r: int, p: int) -> int:
    """The ``maxmem`` nua passes to ``hashlib.scrypt``: what ``n``, ``r`` and ``p`` need, plus slack.

    scrypt needs ``128 * n * r`` bytes per lane; OpenSSL's default cap (32 MiB)
    would refuse costs an operator may choose on purpose.
    """
    return 128 * n * r * (p + 1) + 1024 * 1024


SCRYPT_KEYS: tuple[Key, ...] = (("security", "scrypt_n"), ("security", "scrypt_r"), ("security", "scrypt_p"))
# OpenSSL checks n below 2 ** (16 * r) only while that power fits in 64 bits.
_LOG2_UINT64_MAX = 63


def scrypt_refusal(n: int, r: int, p: int) -> str | None:
    """Why ``hashlib.scrypt`` refuses these costs with nua's ``maxmem``, or ``None`` if it accepts them.

    The checks CPython's ``hashlib.scrypt`` and OpenSSL 3's ``EVP_PBE_scrypt`` make
    before they hash, done in arithmetic: asking hashlib itself costs a whole hash
    at the configured cost (tens of milliseconds at the defaults, seconds at a
    gigabyte), at every start. OpenSSL's other bounds (``r * p`` below ``2 ** 30``,
    ``128 * r * p`` within a C int) follow from ``maxmem`` being a C int. A test
    holds this to what hashlib answers at each limit, so that a Python or OpenSSL
    that moves one fails there.
    """
    if n < 2 or n & (n - 1):  # CPython
        return "n must be a power of two above 1"
    if r < 1 or p < 1:  # OpenSSL
        return "r and p must be at least 1"
    maxmem = scrypt_maxmem(n, r, p)
    if maxmem > C_INT_MAX:  # CPython: maxmem is a C int
        return f"the memory allowed, 128 * n * r * (p + 1) bytes + 1 MiB = {maxmem}, must be at most {C_INT_MAX}"
    if 16 * r <= _LOG2_UINT64_MAX and n >= 1 << (16 * r):  # OpenSSL, as the rest
        return "n must be below 2 ** (16 * r)"
    if 128 * r * (p + n + 2) > maxmem:
        return f"scrypt's memory, 128 * r * (p + n + 2) bytes, must be at most the {maxmem} allowed"
    return None


class ScryptAccepted(CrossRule):
    """``hashlib.scrypt`` accepts these costs with the memory nua allows it (see :func:`scrypt_refusal`).

    Deep although it is arithmetic: only the daemon hashes, and a cost changed
    since a daemon started must not stop ``stop`` or ``status`` from finding it.
    """

    deep: ClassVar[bool] = True

    @property
    def keys(self) -> tuple[Key, ...]:
        return SCRYPT_KEYS

    def complaint(self, values: Mapping[Key, Any], origins: Mapping[Key, str]) -> str | None:  # noqa: ARG002
        n, r, p = (values[key] for key in SCRYPT_KEYS)
        refusal = scrypt_refusal(n, r, p)
        if refusal is None:
            return None
        given = ", ".join(f"{key[1]} = {values[key]}" for key in SCRYPT_KEYS)
        return f"[security] {given}: hashlib.scrypt refuses them ({refusal})"


__all__ = [
    "AUTH_MODES",
    "C_INT_MAX",
    "DAY_S",
    "ENDPOINT",
    "HIGHEST_PORT",
    "HOST",
    "HTTP_OFF",
    "HTTP_PORT",
    "KEEP_DAYS",
    "LOG_LEVELS",
    "MAX_KEEP_DAYS",
    "PORT",
    "SQLITE_SYNCHRONOUS",
    "AbsolutePath",
    "AtMost",
    "AuthFitsEndpoint",
    "Between",
    "CrossRule",
    "DbUrl",
    "Endpoint",
    "Host",
    "HostNames",
    "HttpFitsAddress",
    "Key",
    "ModuleNames",
    "OneOf",
    "OptionalPath",
    "PowerOfTwo",
    "Rule",
    "ScryptAccepted",
    "Seconds",
    "Shown",
    "is_loopback",
    "name",
    "scrypt_maxmem",
    "scrypt_refusal",
]
