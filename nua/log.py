"""Structured logging: JSON lines to a file when daemonised, a console renderer in the foreground.

The log file can be re-opened (:func:`reopen`, on ``SIGHUP``), so that logrotate
may move it away without ``copytruncate``, and a removed log directory is made
again rather than logs going on into a deleted file.

Everything goes through the standard ``logging`` module at the bottom so that the
records of libraries (SQLAlchemy, pykka) end up in the same place and format as
nua's own. An actor's failure is logged once, by the actor, with its id: pykka's
own report of it is silenced.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from nua.settings import private_dir

if TYPE_CHECKING:
    import structlog


@contextlib.contextmanager
def _without(module: str) -> Iterator[None]:
    """Inside this block ``import module`` fails as if it were not installed, unless it is imported already."""
    if module in sys.modules:
        yield
        return
    sys.modules[module] = None  # type: ignore[assignment] # importlib: a None entry makes the import raise
    try:
        yield
    finally:
        if module in sys.modules and sys.modules[module] is None:
            del sys.modules[module]


@functools.cache
def _structlog() -> ModuleType:
    """structlog, imported at the first need of it (a logger asked for, the logs configured).

    Not when this module is: structlog brings asyncio and ssl (40 ms of a start
    here), and the daemon's first lines, before it is ready, need neither
    (:class:`EarlyLogger`). It loads ``rich`` whenever that is installed (the test
    tools bring it), for its console renderer's and tracebacks' pretty output: a
    sixth of a start's imports (3 MiB of the daemon's memory). nua uses neither
    (rich's tracebacks show local variables, a password among them): configure()
    names the plain formatter. So rich is hidden from structlog's import; another
    module may still import rich later.
    """
    with _without("rich"):
        import structlog  # noqa: PLC0415 - see above

    return structlog


LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# The keys a JSON line begins with, in this order: what ``tail`` and ``nua logs`` show first.
FIRST_KEYS = ("timestamp", "level", "event")


def _timestamp(at: float | None = None) -> str:
    """The time of a line as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes it; now unless ``at``."""
    if at is None:
        return _now_stamp(time.time_ns())
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


# The last second stamped and its text up to the seconds ("2026-11-28T18:30:00"): lines come many a second.
_second: list[tuple[int, str]] = [(-1, "")]


def _now_stamp(ns: int) -> str:
    """``datetime.now(UTC).isoformat()`` with ``Z`` for ``+00:00``, read at ``ns`` (``time.time_ns()``).

    ``datetime.now`` reads that clock and floors it to microseconds; ``isoformat``
    writes ``.ffffff`` unless they are 0. Formatting a whole datetime is most of
    what a line's time costs (16k instructions): the seconds' text is kept.
    """
    seconds, micros = divmod(ns // 1000, 1_000_000)
    second = _second[0]
    if second[0] != seconds:
        second = (seconds, datetime.fromtimestamp(seconds, UTC).isoformat()[:19])
        _second[0] = second
    return f"{second[1]}.{micros:06d}Z" if micros else f"{second[1]}Z"


def _stamp(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict["timestamp"] = _timestamp()
    return event_dict


def _shared() -> list[Any]:
    """The processors every line goes through first (nua's and the libraries'), the time last."""
    structlog = _structlog()
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _stamp,
    ]


class _Output(NamedTuple):
    """Where :func:`configure` sends lines: its handler, and the processors that render an event for it."""

    handler: logging.StreamHandler[Any]
    # What makes a line of an event dict: the processors of _shared() but the time, then the handler's formatter's.
    unstamped: Sequence[Any]
    render: Sequence[Any]
    # The JSON renderer's own encoding, when unstamped and render are the chain of a log file (see _json_encode).
    encode: Callable[[Any], str] | None = None


# The arguments of json.dumps that it hands to json.JSONEncoder as they are.
_ENCODER_ARGUMENTS = frozenset(
    ("skipkeys", "ensure_ascii", "check_circular", "allow_nan", "indent", "separators", "default", "sort_keys")
)


def _json_encode(unstamped: Sequence[Any], render: Sequence[Any]) -> Callable[[Any], str] | None:
    """What the last of ``render`` does to an event dict, when the chain is the one :func:`configure` makes for a file.

    That chain is :func:`_shared` (contextvars, level, logger name, time), then
    ``format_exc_info``, :func:`first_keys_first` and a ``JSONRenderer`` calling
    ``json.dumps(event_dict, **its_arguments)``. :func:`write_lines` then builds
    each event dict as that chain would leave it and encodes it as the renderer
    would: ``json.dumps`` with arguments other than its defaults is
    ``json.JSONEncoder(**arguments).encode``, made here once rather than per line.
    ``None`` for any other chain (the console's, one changed by a caller):
    :func:`write_lines` runs its processors.
    """
    structlog = _structlog()
    known = (
        (structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name),
        (structlog.processors.format_exc_info, first_keys_first),
    )
    if (tuple(unstamped), tuple(render[:-1])) != known or type(render[-1]) is not structlog.processors.JSONRenderer:
        return None
    arguments = getattr(render[-1], "_dumps_kw", None)  # what the renderer passes to its serializer
    if getattr(render[-1], "_dumps", None) is not json.dumps or not isinstance(arguments, dict):
        return None
    if not arguments.keys() <= _ENCODER_ARGUMENTS:  # a cls, or a custom encoder's own arguments
        return None
    return json.JSONEncoder(**arguments).encode


# The output of the last configure(); None before it (write_lines then goes through logging itself).
_output: _Output | None = None


def open_file(log_file: str | Path) -> io.TextIOWrapper:
    """``log_file`` opened for appending as :func:`configure` opens it (its directory made private if missing).

    For a process that must know it can write its log before it loads structlog
    (the daemon, before it says it is ready): :func:`configure` takes the stream.
    """
    path = Path(log_file)
    private_dir(path.parent)
    return path.open("a", encoding="utf-8")


def configure(level: str = "info", log_file: str | Path | None = None, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to one handler; then write the lines that :func:`early` loggers kept.

    With ``log_file`` the records are JSON lines appended to it (to ``stream`` if
    given: that file opened by :func:`open_file`); otherwise they are rendered for
    humans on ``stream`` (stderr by default).
    """
    structlog = _structlog()
    shared = _shared()
    if log_file is not None:
        path = Path(log_file)
        handler: logging.StreamHandler[Any] = _LogFile(path, encoding="utf-8", delay=True)
        handler.setStream(stream or open_file(path))
        renderer: Any = structlog.processors.JSONRenderer()
        extra: list[Any] = [structlog.processors.format_exc_info, first_keys_first]
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        # Plain tracebacks: with `rich` installed, structlog's default shows each frame's
        # local variables, a password among them.
        renderer = structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
        extra = []
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *extra, renderer],
        )
    )
    global _output  # noqa: PLW0603 - the process has one log output, as logging has one root handler
    unstamped, render = tuple(shared[:-1]), (*extra, renderer)
    _output = _Output(handler, unstamped, render, _json_encode(unstamped, render))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    set_level(level)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    _write_early()


# One line for write_lines: its level name, its event, its fields.
Line = tuple[str, str, Mapping[str, Any]]


def write_lines(
    logger: structlog.stdlib.BoundLogger,
    lines: Sequence[Line],
    *,
    at: float | None = None,
    stdlib_logger: logging.Logger | None = None,
) -> None:
    """Log ``lines`` through ``logger`` (its name and bound fields), each as ``logger.<level>(event, **fields)`` would.

    The same processors and renderer make each line, so the output is the same;
    what is skipped is what a line costs besides its text: a stdlib record made
    twice (logging's, then the formatter's copy), the caller's frame looked up,
    one write and flush per line, and one clock read per line: the lines are
    written together, in one write under the handler's lock, with one timestamp
    (the moment they are written, as each line's would be). For frequent lines
    (a :class:`~nua.actors.log_thread.LogThread`'s backlog), a line costs about a
    third of what logging it alone does. A line below the logger's level is left out.
    ``at`` (seconds since the epoch) is their time instead of now. ``stdlib_logger``
    is ``logging.getLogger(logger.name)`` when the caller has it already.
    """
    output = _output
    if stdlib_logger is None:
        stdlib_logger = logging.getLogger(logger.name)
    if output is None or output.handler.stream is None:  # not configured, or a closed file: logging's own way
        for level, event, fields in lines:
            getattr(logger, level)(event, **fields)
        return
    # Written at one moment, the lines have one time: stamped where _stamp would stamp each.
    texts = _render(output, stdlib_logger, _structlog().get_context(logger), lines, _timestamp(at))
    if not texts:
        return
    handler = output.handler
    handler.acquire()  # the lock a reopen swaps the file under: every line goes whole to one file
    try:
        handler.stream.write("".join(f"{text}{handler.terminator}" for text in texts))
        handler.flush()
    except Exception:  # noqa: BLE001 - as logging does: reported on stderr, never raised to the caller
        handler.handleError(logging.makeLogRecord({"name": logger.name, "msg": texts[0]}))
    finally:
        handler.release()


def _render(
    output: _Output, stdlib_logger: logging.Logger, context: Mapping[str, Any], lines: Sequence[Line], stamp: str
) -> list[Any]:
    """The text of each of ``lines`` at or above the level, as ``output``'s processors make it (see write_lines)."""
    encode, name = output.encode, stdlib_logger.name
    # The structlog context-local values that merge_contextvars adds to each line (usually none).
    local: dict[str, Any] = {} if encode is None else output.unstamped[0](stdlib_logger, "info", {})
    if "exc_info" in local or "_record" in local:  # keys the chain treats apart: its own way for every line
        encode = None
    enabled: dict[str, bool] = {}
    texts = []
    for level, event, fields in lines:
        on = enabled.get(level)
        if on is None:
            on = enabled[level] = stdlib_logger.isEnabledFor(LEVELS[level])
        if not on:
            continue
        if encode is not None:
            # The event dict the chain leaves for its renderer, made at once. The chain makes
            # {**context, **fields, "event": event}, adds the context-local values missing
            # (merge_contextvars), sets "level", "logger" (add_logger_name: a "_record" would
            # name it), "timestamp", renders an "exc_info" (none here), then moves timestamp,
            # level and event first (first_keys_first): the other keys keep their order.
            event_dict: Any = {"timestamp": stamp, "level": level, "event": event, **context, **fields}
            if "exc_info" not in event_dict and "_record" not in event_dict:
                for key, value in local.items():
                    event_dict.setdefault(key, value)
                # Set again: the context or the fields may hold these keys, whose values the chain replaces.
                event_dict["timestamp"], event_dict["level"], event_dict["event"] = stamp, level, event
                event_dict["logger"] = name
                texts.append(encode(event_dict))
                continue
        event_dict = {**context, **fields, "event": event}
        for processor in output.unstamped:
            event_dict = processor(stdlib_logger, level, event_dict)
        event_dict["timestamp"] = stamp
        for processor in output.render:
            event_dict = processor(stdlib_logger, level, event_dict)
        texts.append(event_dict)
    return texts


def first_keys_first(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """``event_dict`` with :data:`FIRST_KEYS` first (a structlog processor, before the JSON renderer).

    structlog adds the level and the timestamp after the line's own keys, so the
    JSON renderer would write them last, and ``event`` before them.
    """
    ordered = {key: event_dict[key] for key in FIRST_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


class _LogFile(logging.FileHandler):
    """A log file that can be opened again under its name, by the same handler."""

    def reopen(self) -> None:
        fresh = open_file(self.baseFilename)  # its directory made again if it was removed
        # Swapped under the handler's lock: a record is written whole to one file or the other.
        old = self.setStream(fresh)
        if old is not None:
            old.close()


def current_file() -> Path | None:
    """The file the logs go to, ``None`` when they go to a stream (the console of a foreground run)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _LogFile):
            return Path(handler.baseFilename)
    return None


def reopen() -> Path | None:
    """Open the log file again under its name; the file, or ``None`` when logging to a stream.

    Raises ``OSError`` or ``SettingsError`` when it cannot (the old file stays in use).
    """
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _LogFile):
            handler.reopen()
            return Path(handler.baseFilename)
    return None


# The level set last, for sys_config (a list: set from the signal-handling thread, read by the gateway's).
_LEVEL_SET: list[str] = []


def set_level(level: str) -> None:
    """Change the level of every logger at once (SIGHUP uses this)."""
    logging.getLogger().setLevel(LEVELS[level])
    _LEVEL_SET[:] = [level]
    # pykka logs every ask that raises at INFO: that is a reply to a caller, not news;
    # and every actor failure at ERROR, which SupervisedActor logs itself, with the
    # actor's id. What pykka alone can tell (a BaseException stopping all actors) is CRITICAL.
    logging.getLogger("pykka").setLevel(logging.CRITICAL)


def level() -> str | None:
    """The level :func:`set_level` last set (a SIGHUP's too); ``None`` before logging is configured."""
    return _LEVEL_SET[-1] if _LEVEL_SET else None


def get(name: str, **bound: Any) -> structlog.stdlib.BoundLogger:
    """A logger named ``name`` with ``bound`` key/values on every line."""
    logger: structlog.stdlib.BoundLogger = _structlog().stdlib.get_logger(name).bind(**bound)
    return logger


# Past this many, an early line is dropped (counted): the daemon logs a few before it is ready.
EARLY_MAX = 1000
# One line of an early logger: (time, logger name, bound fields, level, event, fields).
_EarlyLine = tuple[float, str, Mapping[str, Any], str, str, Mapping[str, Any]]


class _EarlyLines:
    """The lines early loggers keep until :func:`configure` takes them (at most :data:`EARLY_MAX`, the rest counted).

    Once taken, it keeps no more: an early logger then writes at once. Keeping and
    taking hold one lock, so that no line is kept after the last take.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[_EarlyLine] = []
        self._dropped = 0
        self._taken = False

    def add(self, line: _EarlyLine) -> bool:
        """Keep ``line``; ``False`` once the lines were taken (the caller writes it)."""
        with self._lock:
            if self._taken:
                return False
            if len(self._lines) < EARLY_MAX:
                self._lines.append(line)
            else:
                self._dropped += 1
            return True

    def take(self) -> tuple[list[_EarlyLine], int]:
        """The lines kept and how many were dropped; none kept after."""
        with self._lock:
            taken = (self._lines, self._dropped)
            self._lines, self._dropped, self._taken = [], 0, True
        return taken


_early_lines = _EarlyLines()


class EarlyLogger:
    """A logger for a process's first moments, before :func:`configure`: its lines wait, then are written by it.

    The daemon logs a few lines before it is ready (its start, a stale file removed,
    a failure); writing them through structlog would load structlog first, most of
    the time a start spends before ready. Each line keeps the time it was logged
    at; :func:`configure` writes them, in order, through the loggers :func:`get`
    gives, as if they had been logged then. Only the methods the daemon's start
    uses: the level methods, :meth:`exception` (the traceback kept as text) and
    :meth:`bind`.
    """

    def __init__(self, name: str, bound: Mapping[str, Any]) -> None:
        self.name = name
        self._bound = dict(bound)

    def bind(self, **more: Any) -> EarlyLogger:
        return EarlyLogger(self.name, {**self._bound, **more})

    def debug(self, event: str, **fields: Any) -> None:
        self._keep("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._keep("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._keep("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._keep("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._keep("error", event, {**fields, "exception": traceback.format_exc().rstrip("\n")})

    def _keep(self, level: str, event: str, fields: Mapping[str, Any]) -> None:
        if not _early_lines.add((time.time(), self.name, self._bound, level, event, fields)):
            write_lines(get(self.name, **self._bound), [(level, event, fields)])  # configured: written now


def early(name: str, **bound: Any) -> EarlyLogger:
    """A logger named ``name`` with ``bound`` key/values, whose lines wait for :func:`configure` (see EarlyLogger)."""
    return EarlyLogger(name, bound)


def _write_early() -> None:
    lines, dropped = _early_lines.take()
    for at, name, bound, level, event, fields in lines:
        write_lines(get(name, **bound), [(level, event, fields)], at=at)
    if dropped:
        get("nua.log").warning("early_lines_dropped", count=dropped)
