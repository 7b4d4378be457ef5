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
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO


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


# structlog loads `rich` whenever it is installed (the test tools bring it), for its
# console renderer's and tracebacks' pretty output: a sixth of a start's imports here
# (300 of 1,783 million instructions, and 3 MiB of the daemon's memory). nua uses
# neither (rich's tracebacks show local variables, a password among them): configure()
# names the plain formatter. So nua hides rich from structlog's import; another module
# may still import rich later.
with _without("rich"):
    import structlog

from nua.settings import private_dir  # noqa: E402 - after structlog, above

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# The keys a JSON line begins with, in this order: what ``tail`` and ``nua logs`` show first.
FIRST_KEYS = ("timestamp", "level", "event")

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]
# The last of _SHARED: write_lines stamps the lines it writes together with one call of it.
_STAMP = _SHARED[-1]
_UNSTAMPED = tuple(_SHARED[:-1])


class _Output(NamedTuple):
    """Where :func:`configure` sends lines: its handler, and the processors that render an event for it."""

    handler: logging.StreamHandler[Any]
    # What makes a line of an event dict once _SHARED has run: the handler's formatter's processors.
    render: Sequence[Any]


# The output of the last configure(); None before it (write_lines then goes through logging itself).
_output: _Output | None = None


def configure(level: str = "info", log_file: str | Path | None = None, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to one handler.

    With ``log_file`` the records are JSON lines appended to it; otherwise they are
    rendered for humans on ``stream`` (stderr by default).
    """
    if log_file is not None:
        path = Path(log_file)
        private_dir(path.parent)
        handler: logging.StreamHandler[Any] = _LogFile(path, encoding="utf-8")
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
            foreign_pre_chain=_SHARED,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *extra, renderer],
        )
    )
    global _output  # noqa: PLW0603 - the process has one log output, as logging has one root handler
    _output = _Output(handler, (*extra, renderer))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    set_level(level)
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


# One line for write_lines: its level name, its event, its fields.
Line = tuple[str, str, Mapping[str, Any]]


def write_lines(logger: structlog.stdlib.BoundLogger, lines: Sequence[Line]) -> None:
    """Log ``lines`` through ``logger`` (its name and bound fields), each as ``logger.<level>(event, **fields)`` would.

    The same processors and renderer make each line, so the output is the same;
    what is skipped is what a line costs besides its text: a stdlib record made
    twice (logging's, then the formatter's copy), the caller's frame looked up,
    one write and flush per line, and one clock read per line: the lines are
    written together, in one write under the handler's lock, with one timestamp
    (the moment they are written, as each line's would be). For frequent lines
    (a :class:`~nua.actors.log_thread.LogThread`'s backlog), a line costs about a
    third of what logging it alone does. A line below the logger's level is left out.
    """
    output = _output
    stdlib_logger = logging.getLogger(logger.name)
    if output is None or output.handler.stream is None:  # not configured, or a closed file: logging's own way
        for level, event, fields in lines:
            getattr(logger, level)(event, **fields)
        return
    context = structlog.get_context(logger)
    # Written at one moment, the lines have one time: stamped where _STAMP would stamp each.
    stamp = _STAMP(stdlib_logger, "info", {})["timestamp"]
    texts = []
    for level, event, fields in lines:
        if not stdlib_logger.isEnabledFor(LEVELS[level]):
            continue
        event_dict: Any = {**context, **fields, "event": event}
        for processor in _UNSTAMPED:
            event_dict = processor(stdlib_logger, level, event_dict)
        event_dict["timestamp"] = stamp
        for processor in output.render:
            event_dict = processor(stdlib_logger, level, event_dict)
        texts.append(event_dict)
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
        path = Path(self.baseFilename)
        private_dir(path.parent)  # made again if it was removed
        fresh = path.open("a", encoding=self.encoding, errors=self.errors)
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
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name).bind(**bound)
    return logger
