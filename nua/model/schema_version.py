"""The schema version this nua reads and writes, and the table that records it: known without SQLAlchemy.

:mod:`nua.model.schema` creates and upgrades the schema; :mod:`nua.model.sqlite_check`
reads the version with the standard library before the daemon is ready.
"""

from __future__ import annotations

SCHEMA_VERSION = 2
# The table of nua's own facts; its row ``schema_version`` is the version.
META_TABLE = "nua_meta"


def newer_schema(version: int) -> str:
    """Why a database at ``version`` (newer than this nua's) is refused."""
    return f"the database's schema version {version} is newer than this nua's ({SCHEMA_VERSION}); upgrade nua"


__all__ = ["META_TABLE", "SCHEMA_VERSION", "newer_schema"]
