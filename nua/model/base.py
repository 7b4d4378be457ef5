"""The metadata every table belongs to, and the UTC timestamp column type.

The tables are SQLAlchemy Core tables, not ORM classes: nua reads and writes
them with Core statements only, and the ORM is a third of SQLAlchemy's import
time and a few MiB of the daemon's memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, MetaData
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so that later schema upgrades can refer to them on any backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# nua's tables: the whole schema.
metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    SQLite keeps no zone and PostgreSQL converts to the session's; normalising on
    the way in and out makes replies the same on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002 - TypeDecorator's signature
        if value is None:
            return None
        if value.tzinfo is UTC:  # nua's own timestamps (utcnow): nothing to convert
            return value
        if value.tzinfo is None:
            msg = "UtcDateTime needs an aware datetime"
            raise ValueError(msg)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002 - as above
        if value is None:
            return None
        stamp: datetime = value
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


# The timestamp of the transaction being applied in this thread, if any (see transaction_time).
_TRANSACTION_TIME: ContextVar[datetime | None] = ContextVar("nua_transaction_time", default=None)


def utcnow() -> datetime:
    """Now, in UTC; inside :func:`transaction_time`, that transaction's one timestamp."""
    return _TRANSACTION_TIME.get() or datetime.now(UTC)


@contextmanager
def transaction_time() -> Iterator[datetime]:
    """Give every row written until the block ends the same timestamp: the transaction's.

    As SQL's ``CURRENT_TIMESTAMP`` is fixed per transaction, the commands of one DB
    writer batch, committed together, are stamped together. It also spares the
    writer's serial section a clock read, a bind conversion and an ISO rendering per
    command: the same datetime object is converted once (see :func:`iso` and
    ``nua.model.compiled``).
    """
    now = datetime.now(UTC)
    token = _TRANSACTION_TIME.set(now)
    try:
        yield now
    finally:
        _TRANSACTION_TIME.reset(token)


class _LastIso(threading.local):
    stamp: datetime | None = None
    text: str | None = None


_last_iso = _LastIso()


def iso(stamp: datetime | None) -> str | None:
    """A timestamp as replies carry it: ISO 8601 with its UTC offset."""
    if stamp is None:
        return None
    last = _last_iso
    if last.stamp is not stamp:  # a batch's rows share one datetime object: render it once
        last.text = stamp.isoformat(timespec="microseconds")
        last.stamp = stamp
    return last.text
