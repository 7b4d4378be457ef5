"""What ``nua`` accepts on its command line, checked where it enters: one line and exit 2 for anything else.

argparse reports a bad value as a usage block and an error line; ``nua`` says it
in one line naming the command and the argument, with the help to read. Every
value is checked here by meaning, before any daemon is asked: an endpoint that
parses (``tcp://HOST:PORT``, ``ipc:///path``), a timeout that is a finite number
of seconds above 0, ids that are integers, JSON that is strict JSON (no ``NaN``
or ``Infinity``, which JSON does not have), names that are not empty; no
argument that is not valid UTF-8 (a non-UTF-8 byte reaches Python as a lone
surrogate) nor longer than :data:`MAX_ARGUMENT`.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import Any, NoReturn

from nua.endpoint import HIGHEST_PORT, port_number, tcp_parts
from nua.roles import ROLES, USER_ROLES

EXIT_USAGE = 2
# Longest argument accepted (characters): larger values go through ``nua call METHOD -`` (params on stdin).
MAX_ARGUMENT = 65536
# Longest wait a --timeout may ask for, as the daemon's own timeouts.
MAX_TIMEOUT_S = 86400.0

EXIT_CODES = """exit status:
  0    done
  1    the daemon answered with an error
  2    usage error: nothing was sent
  3    the daemon is unreachable, or refused this client's key
  6    the settings are wrong, or the client key is missing or open to others
  130  interrupted"""
VARIABLES = """environment:
  NUA_CONFIG              the settings file, as --config
  NUA_<SECTION>_<KEY>     any setting (NUA_ZMQ_PORT, NUA_ZMQ_ENDPOINT, NUA_SERVER_PID_FILE,
                          NUA_ZMQ_CLIENT_KEY ...): the daemon is found through the pid file
                          they name and its runtime record, as in `nua-orchestrator config`"""
ROLE_HELP = f"one of {', '.join(ROLES)}"
USER_ROLE_HELP = f"the user's role: one of {', '.join(USER_ROLES)} (default user)"


class UsageError(Exception):
    """A command line that cannot be run as given (exit 2)."""


class ParseError(UsageError):
    """argparse refused the command line: one line naming the command, what is wrong, where its help is."""


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (:class:`ParseError`) rather than a usage block and a line."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("nua").strip()
        where = f"{command}: " if command else ""
        raise ParseError(f"{where}{message} (`{self.prog} --help` lists the arguments)")


def checked_text(value: str, what: str = "the argument") -> str:
    """``value`` if valid UTF-8 and at most :data:`MAX_ARGUMENT` characters, else ``ArgumentTypeError``."""
    if len(value) > MAX_ARGUMENT:
        msg = f"{what} is {len(value)} characters long; at most {MAX_ARGUMENT} on the command line"
        raise argparse.ArgumentTypeError(msg)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        msg = f"{what} is not valid UTF-8 text"
        raise argparse.ArgumentTypeError(msg) from None
    return value


def text(value: str) -> str:
    """Any text (empty allowed): a display name, a value."""
    return checked_text(value)


def name(value: str) -> str:
    """A name (user, e-mail, group, setting key, service, method): not empty, no control character."""
    checked_text(value)
    if not value.strip():
        msg = "must not be empty"
        raise argparse.ArgumentTypeError(msg)
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        msg = f"must not hold control characters, got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def whole(value: str) -> int:
    """An integer (an id): ASCII digits with an optional sign, no ``nan``, ``1e3`` or ``0x10``."""
    digits = checked_text(value).strip()
    body = digits[1:] if digits[:1] in "+-" else digits
    if not (body.isascii() and body.isdigit()) or len(body) > 19:
        msg = f"must be an integer, got {value[:40]!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(digits)


def count(value: str) -> int:
    """A number of lines or records: an integer from 1 to 1,000,000."""
    number = whole(value)
    if not 1 <= number <= 1_000_000:
        msg = f"must be from 1 to 1000000, got {number}"
        raise argparse.ArgumentTypeError(msg)
    return number


def timeout(value: str) -> float:
    """``--timeout``: seconds, a finite number above 0 and at most a day."""
    try:
        seconds = float(checked_text(value))
    except ValueError:
        msg = f"must be a number of seconds, got {value[:40]!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_TIMEOUT_S:
        msg = f"must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:.0f}, got {value[:40]!r}"
        raise argparse.ArgumentTypeError(msg)
    return seconds


def endpoint(value: str) -> str:
    """``--endpoint``: ``tcp://HOST:PORT`` (PORT 1 to 65535) or ``ipc:///absolute/path``."""
    from nua.setting_rules import Endpoint  # noqa: PLC0415 - the settings' rule, loaded only when --endpoint is given

    checked_text(value)
    parts = tcp_parts(value)
    if parts is not None:
        port = port_number(parts[1])
        if parts[0] and port and Endpoint().complaint(value) is None:
            return value
        msg = f"must be tcp://HOST:PORT with PORT from 1 to {HIGHEST_PORT}, got {value[:80]!r}"
        raise argparse.ArgumentTypeError(msg)
    if value.startswith("ipc://") and Endpoint().complaint(value) is None:
        return value
    msg = f"must be tcp://HOST:PORT or ipc:///absolute/path (a socket path of at most 107 bytes), got {value[:80]!r}"
    raise argparse.ArgumentTypeError(msg)


def _strict_constant(word: str) -> Any:
    msg = f"{word} is not JSON (JSON has no NaN or infinity)"
    raise ValueError(msg)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        msg = f"{text} is too large for a JSON number (it would be infinity)"
        raise ValueError(msg)
    return number


def strict_json(value: str, what: str, *, from_stdin: bool = False) -> Any:
    """``value`` parsed as strict JSON (no ``NaN``, ``Infinity``): :class:`UsageError` saying how to quote it.

    Read ``from_stdin``, it may be longer than an argument may.
    """
    try:
        text = value if from_stdin else checked_text(value, what)
        return json.loads(text, parse_constant=_strict_constant, parse_float=_finite)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"{what}: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"{what} is not JSON ({exc})") from None


def role(value: str) -> str:
    """A client key's role (``reader``, ``operator``, ``admin``)."""
    if value not in ROLES:
        msg = f"must be one of {', '.join(ROLES)}, got {value[:40]!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def user_role(value: str) -> str:
    """A platform user's role (``user``, ``admin``)."""
    if value not in USER_ROLES:
        msg = f"must be one of {', '.join(USER_ROLES)}, got {value[:40]!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def first_bad_argument(argv: Sequence[str]) -> str | None:
    """Why ``argv`` cannot be read at all (an argument not UTF-8, or too long), before any parsing."""
    for position, argument in enumerate(argv, 1):
        try:
            checked_text(argument, f"argument {position}")
        except argparse.ArgumentTypeError as exc:
            return str(exc)
    return None


__all__ = [
    "EXIT_CODES",
    "MAX_ARGUMENT",
    "ROLE_HELP",
    "USER_ROLE_HELP",
    "VARIABLES",
    "OneLineParser",
    "ParseError",
    "UsageError",
    "checked_text",
    "count",
    "endpoint",
    "first_bad_argument",
    "name",
    "role",
    "strict_json",
    "text",
    "timeout",
    "user_role",
    "whole",
]
