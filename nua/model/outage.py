"""Which database errors are about the environment, said in words an operator understands.

A full disk, a read-only file, an I/O error, a lost or refused server connection,
a lock held past the busy timeout: none of these is a bug in nua, and none goes
away by restarting the actor that met it. The DB writer asks :func:`classify`
about every error; an :class:`Outage` makes it refuse work and retry later, while
anything else (``None``) stays a bug that crashes it.

The decision rests on error codes, never on message text: SQLite's result codes
(``sqlite_errorcode``), PostgreSQL's SQLSTATE and psycopg's exception classes, and
SQLAlchemy's ``connection_invalidated``. The reason is built from those codes
alone: a driver's message may quote a statement or its parameters, this never does.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc


@dataclass(frozen=True)
class Outage:
    """Why the database cannot take writes now.

    ``reconnect``: the connection itself is unusable (lost, or its file is gone)
    and must be replaced; otherwise it may still serve reads (a full disk).
    """

    reason: str
    reconnect: bool = False


class OutageError(Exception):
    """Raised by nua's own checks (the database file deleted or replaced) with the outage it found."""

    def __init__(self, outage: Outage) -> None:
        super().__init__(outage.reason)
        self.outage = outage


def no_nua_database(where: object) -> OutageError:
    """The outage of a database holding no nua schema where the daemon's was (a file put back that is another).

    Only the daemon's start creates a database: while it runs, such a file is
    refused rather than filled, by the writer and the reader alike.
    """
    reason = f"{where} holds no nua database (restore it, or restart the daemon to create a new one)"
    return OutageError(Outage(reason, reconnect=True))


# SQLite primary result codes (the low byte of an extended code) that come from the
# environment, with what to tell the operator and whether the connection is spent.
_SQLITE: dict[int, tuple[str, bool]] = {
    3: ("permission denied on the database file", False),  # SQLITE_PERM
    5: ("the database is locked by another process past the busy timeout", False),  # SQLITE_BUSY
    6: ("a table of the database is locked", False),  # SQLITE_LOCKED
    7: ("SQLite ran out of memory", False),  # SQLITE_NOMEM
    8: ("the database file or its file system is read-only", False),  # SQLITE_READONLY
    10: ("an I/O error on the database file", True),  # SQLITE_IOERR
    11: ("the database file is corrupt", True),  # SQLITE_CORRUPT
    13: ("the disk holding the database is full", False),  # SQLITE_FULL
    14: ("the database file cannot be opened", True),  # SQLITE_CANTOPEN
    15: ("a file locking protocol error on the database", True),  # SQLITE_PROTOCOL
    26: ("the file at the database's path is not a database", True),  # SQLITE_NOTADB
}
# Extended codes that say more than their primary code.
_SQLITE_EXTENDED: dict[int, tuple[str, bool]] = {
    1032: ("the database file was moved or deleted", True),  # SQLITE_READONLY_DBMOVED
    1288: ("the database's directory is read-only", False),  # SQLITE_READONLY_DIRECTORY
}

# PostgreSQL SQLSTATEs (exact, then by class) that come from the environment.
_PG_STATES: dict[str, tuple[str, bool]] = {
    "57P01": ("the database server ended the connection (administrator command)", True),
    "57P02": ("the database server crashed and ended the connection", True),
    "57P03": ("the database server is not accepting connections now (starting or stopping)", True),
    "53300": ("the database server has too many connections", True),
    "53100": ("the database server's disk is full", False),
    "53200": ("the database server is out of memory", False),
    "25006": ("the database server is read-only (a standby?)", False),
    "55P03": ("a lock is held by another database session", False),
    "57014": ("the database server cancelled a statement (timeout or administrator)", False),
}
_PG_CLASSES: dict[str, tuple[str, bool]] = {
    "08": ("the connection to the database server failed", True),
    "53": ("the database server is out of resources", False),
    "57": ("the database server intervened (shutdown or cancel)", True),
    "58": ("the database server met a system error", False),
}
_PG_NO_STATE = ("the connection to the database server was lost or refused", True)


def classify(error: BaseException) -> Outage | None:
    """The outage ``error`` reveals, or ``None`` when it is not about the environment (a bug)."""
    if isinstance(error, OutageError):
        return error.outage
    if isinstance(error, sa_exc.DBAPIError):
        found = _driver_outage(error.orig) if error.orig is not None else None
        if error.connection_invalidated:
            reason = found.reason if found is not None else "the connection to the database was lost"
            return Outage(reason, reconnect=True)
        return found
    if isinstance(error, sa_exc.DisconnectionError):
        return Outage("the connection to the database was lost", reconnect=True)
    return _driver_outage(error)


def _driver_outage(error: BaseException) -> Outage | None:
    """An outage from a driver's own exception (raw, or the ``orig`` of SQLAlchemy's wrapper)."""
    if isinstance(error, sqlite3.Error):
        return _sqlite_outage(error)
    return _psycopg_outage(error)


def _sqlite_outage(error: sqlite3.Error) -> Outage | None:
    code = getattr(error, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return None
    found = _SQLITE_EXTENDED.get(code) or _SQLITE.get(code & 0xFF)
    if found is None:
        return None
    phrase, reconnect = found
    name = getattr(error, "sqlite_errorname", None) or f"SQLite code {code}"
    return Outage(f"{phrase} ({name})", reconnect=reconnect)


def _psycopg_outage(error: BaseException) -> Outage | None:
    # Looked up, not imported: psycopg is optional, and an error of its own means it is loaded.
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(error, psycopg.Error):
        return None
    state = getattr(error, "sqlstate", None)
    if isinstance(state, str):
        found = _PG_STATES.get(state) or _PG_CLASSES.get(state[:2])
        if found is not None:
            return Outage(f"{found[0]} (SQLSTATE {state})", reconnect=found[1])
    if isinstance(error, psycopg.OperationalError):
        # No SQLSTATE: the socket broke or the server is unreachable. With an unlisted
        # one, psycopg still files it under the server's operation: reconnecting is safe.
        if isinstance(state, str):
            return Outage(f"the database server refused the operation (SQLSTATE {state})", reconnect=True)
        return Outage(_PG_NO_STATE[0], reconnect=_PG_NO_STATE[1])
    return None


__all__ = ["Outage", "OutageError", "classify", "no_nua_database"]
