"""Structured logging: JSON lines to a file when daemonised, a console renderer in the foreground.

Everything goes through the standard ``logging`` module at the bottom so that the
records of libraries (``pykka`` above all: an actor that dies in a ``tell`` is only
reported there) end up in the same place and format as nua's own.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure(level: str = "info", log_file: str | Path | None = None, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to one handler.

    With ``log_file`` the records are JSON lines appended to it; otherwise they are
    rendered for humans on ``stream`` (stderr by default).
    """
    if log_file is not None:
        path = Path(log_file)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
        renderer: Any = structlog.processors.JSONRenderer()
        extra: list[Any] = [structlog.processors.format_exc_info]
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        extra = []
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *extra, renderer],
        )
    )
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


def set_level(level: str) -> None:
    """Change the level of every logger at once (SIGHUP uses this)."""
    logging.getLogger().setLevel(LEVELS[level])
    # pykka logs every ask that raises at INFO: that is a reply to a caller, not news.
    logging.getLogger("pykka").setLevel(max(LEVELS[level], logging.WARNING))


def get(name: str, **bound: Any) -> structlog.stdlib.BoundLogger:
    """A logger named ``name`` with ``bound`` key/values on every line."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name).bind(**bound)
    return logger
