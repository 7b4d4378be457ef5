"""How each command changes or reads the database, on a Connection inside the caller's transaction.

SQLAlchemy Core, not the ORM: the DB writer applies every command through here
and the ORM's per-unit-of-work bookkeeping would be most of its CPU time (the
tables are Core tables too, see :mod:`nua.model.base`). Uniqueness is checked by a query before each write:
the writer is the database's only writer, so the check cannot race, and it tells
*which* field conflicts on every backend (PostgreSQL gives no usable answer once a
statement has failed and aborted the transaction).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from nua.model import commands as cmd
from nua.model import cron_operations
from nua.model.audit import DETAIL_MAX, AuditEntry, Outcome, audit_dict, audit_table
from nua.model.base import utcnow
from nua.model.compiled import Prepared
from nua.model.errors import ConflictError, NotFoundError
from nua.model.group import group_dict, group_members, user_groups
from nua.model.key import client_keys, key_dict, key_tokens, token_dict
from nua.model.service import service_row_dict, services_table
from nua.model.setting import setting_dict, settings_table, stored_setting_dict
from nua.model.user import PUBLIC_COLUMNS, TEXT_STAMP_COLUMNS, user_dict, user_dict_stored, users

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

# Bound parameters per IN list: far below every backend's limit (SQLite's is 32,766, older ones 999).
_CHUNK = 500

C = TypeVar("C")


def _chunks(values: Sequence[C]) -> Iterator[Sequence[C]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _unique(values: Iterable[C]) -> list[C]:
    return list(dict.fromkeys(values))


# -- users --------------------------------------------------------------------------------

# Errors about a statement's rows (a constraint, a trigger, a bad value), not about the
# environment, by their PEP 249 class names: PostgreSQL's DETAIL quotes the whole failing
# row in them, password hash included.
_ROW_ERRORS = frozenset({"IntegrityError", "DataError", "ProgrammingError", "InternalError", "NotSupportedError"})


def _row_error(error: BaseException) -> bool:
    return any(cls.__name__ in _ROW_ERRORS for cls in type(error).__mro__)


def _without_row(orig: BaseException) -> BaseException:
    """The driver's error with its primary message only (same class, so the same SQLSTATE)."""
    primary = getattr(getattr(orig, "diag", None), "message_primary", None) or str(orig).split("\n", 1)[0]
    try:
        return type(orig)(primary)
    except Exception:  # noqa: BLE001 - a driver class that takes other arguments
        return RuntimeError(primary)


@contextmanager
def _rows_kept_out_of_errors() -> Iterator[None]:
    """Re-raise a row error of the block without the row: for statements writing a password hash.

    ``hide_parameters`` keeps bound values out of SQLAlchemy's text, but the
    driver's own message carries the server's DETAIL ("Failing row contains
    (..., scrypt$...)"). The error keeps its classes (SQLAlchemy's and the
    driver's, so its SQLSTATE) with only the primary message, and loses its chain.
    Errors about the environment (a lost connection, a full disk) pass unchanged.
    """
    try:
        yield
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated or exc.orig is None or not _row_error(exc):
            raise
        raise type(exc)(exc.statement, None, _without_row(exc.orig), hide_parameters=True) from None
    except Exception as exc:  # the driver's own, from statements run on its cursor (nua.model.compiled)
        if not _row_error(exc):
            raise
        raise _without_row(exc) from None


# The statements of a user add, a hot path: compiled once, run on the driver (see nua.model.compiled).
_USER_ROW_KEYS = ("id", "username", "email", "password_hash", "role", "display_name", "created_at", "updated_at")
_SAME_NAME_OR_MAIL = Prepared(
    select(users.c.username, users.c.email)
    .where(or_(users.c.username == bindparam("username"), users.c.email == bindparam("email")))
    .limit(1)
)
_ID_TAKEN = Prepared(select(users.c.id).where(users.c.id == bindparam("id")))
_HIGHEST_ID = Prepared(select(func.max(users.c.id)))
_INSERT_USER = Prepared(insert(users), column_keys=_USER_ROW_KEYS)


def _check_user_unique(conn: Connection, field: str, value: str, user_id: int) -> None:
    """Raise ConflictError when a user other than ``user_id`` holds ``value`` in the unique ``field``."""
    query = select(users.c.id).where(users.c[field] == value, users.c.id != user_id).limit(1)
    if conn.execute(query).first() is not None:
        raise ConflictError("user", field, value)


def add_user(conn: Connection, command: cmd.AddUser) -> dict[str, Any]:
    clash = _SAME_NAME_OR_MAIL.first(conn, {"username": command.username, "email": command.email})
    if clash is not None:
        field = "username" if clash[0] == command.username else "email"
        raise ConflictError("user", field, getattr(command, field))
    user_id = command.id
    if user_id is None or user_id < 0 or _ID_TAKEN.first(conn, {"id": user_id}) is not None:
        highest = _HIGHEST_ID.first(conn)
        user_id = 1 if highest is None or highest[0] is None else int(highest[0]) + 1
    now = utcnow()
    row = {
        "id": user_id,
        "username": command.username,
        "email": command.email,
        "password_hash": command.password_hash,
        "role": command.role,
        "display_name": command.display_name,
        "created_at": now,
        "updated_at": now,
    }
    with _rows_kept_out_of_errors():
        _INSERT_USER.execute(conn, row)
    return user_dict(row)


def _user_row(conn: Connection, user_id: int) -> dict[str, Any]:
    found = conn.execute(select(*PUBLIC_COLUMNS).where(users.c.id == user_id)).mappings().first()
    if found is None:
        raise NotFoundError("user", id=user_id)
    return dict(found)


def get_user(conn: Connection, command: cmd.GetUser) -> dict[str, Any]:
    return user_dict(_user_row(conn, command.id))


def _page(rows: Sequence[Any], limit: int, render: Callable[[Any], dict[str, Any]], cursor: str) -> dict[str, Any]:
    """One page of a list reply from up to ``limit + 1`` rows: the extra row only says that more follow.

    ``next`` is the cursor of the page's last item, to pass as ``after`` for the
    following page; ``None`` when nothing follows, so no client needs an empty
    last page to know it is done.
    """
    items = [render(row) for row in rows[:limit]]
    more = len(rows) > limit
    return {"items": items, "next": items[-1][cursor] if more and items else None}


def _user_listing(conn: Connection) -> tuple[Sequence[Any], Callable[[Any], dict[str, Any]]]:
    """The columns a list of users selects on this backend, and how a row becomes a reply."""
    if conn.dialect.name == "sqlite":
        return TEXT_STAMP_COLUMNS, user_dict_stored
    return PUBLIC_COLUMNS, user_dict


def list_users(conn: Connection, command: cmd.ListUsers) -> dict[str, Any]:
    # Keyset paging on the primary key: each page costs its own rows, wherever it starts.
    columns, render = _user_listing(conn)
    query = select(*columns).order_by(users.c.id).limit(command.limit + 1)
    if command.after is not None:
        query = query.where(users.c.id > command.after)
    filters = [(users.c.id, command.ids), (users.c.username, command.names), (users.c.email, command.mails)]
    wanted = [(column, _unique(values)) for column, values in filters if values]
    if command.all or not wanted:
        return _page(conn.execute(query).mappings().all(), command.limit, render, "id")
    # One bounded query per filter chunk, each giving its first limit + 1 matches: their
    # union, ordered by id, holds the page's rows (a user matched twice counts once).
    found: dict[int, Any] = {}
    for column, values in wanted:
        for chunk in _chunks(values):
            for row in conn.execute(query.where(column.in_(chunk))).mappings():
                found[row["id"]] = row
    rows = [found[user_id] for user_id in sorted(found)]
    return _page(rows, command.limit, render, "id")


def count_users(conn: Connection, _command: cmd.CountUsers) -> int:
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def update_user(conn: Connection, command: cmd.UpdateUser) -> dict[str, Any]:
    row = _user_row(conn, command.id)
    if command.field in ("username", "email"):
        _check_user_unique(conn, command.field, command.value, command.id)
    now = utcnow()
    changes = {command.field: command.value, "updated_at": now}
    with _rows_kept_out_of_errors():
        conn.execute(update(users).where(users.c.id == command.id).values(changes))
    if command.field != "password_hash":
        row[command.field] = command.value
    row["updated_at"] = now
    return user_dict(row)


def delete_users(conn: Connection, command: cmd.DeleteUsers) -> int:
    deleted = 0
    for chunk in _chunks(_unique(command.ids)):
        deleted += conn.execute(delete(users).where(users.c.id.in_(chunk))).rowcount
    return deleted


def delete_all_users(conn: Connection, _command: cmd.DeleteAllUsers) -> int:
    return int(conn.execute(delete(users)).rowcount)


# -- groups -------------------------------------------------------------------------------


def _group_id(conn: Connection, name: str) -> int:
    found: int | None = conn.execute(select(user_groups.c.id).where(user_groups.c.name == name)).scalar()
    if found is None:
        raise NotFoundError("group", name=name)
    return found


def add_group(conn: Connection, command: cmd.AddGroup) -> dict[str, Any]:
    if conn.execute(select(user_groups.c.id).where(user_groups.c.name == command.name)).first() is not None:
        raise ConflictError("group", "name", command.name)
    row: dict[str, Any] = {"name": command.name, "source": command.source, "created_at": utcnow()}
    key = conn.execute(insert(user_groups), row).inserted_primary_key
    if key is None:
        msg = "the database returned no id for the new group"
        raise RuntimeError(msg)
    row["id"] = key[0]
    return group_dict(row, members=0)


def list_groups(conn: Connection, command: cmd.ListGroups) -> dict[str, Any]:
    members = func.count(group_members.c.user_id).label("members")
    query = (
        select(user_groups, members)
        .outerjoin(group_members, group_members.c.group_id == user_groups.c.id)
        .group_by(*user_groups.c)
        .order_by(user_groups.c.name)
        .limit(command.limit + 1)
    )
    if command.after is not None:
        query = query.where(user_groups.c.name > command.after)
    rows = conn.execute(query).mappings().all()
    return _page(rows, command.limit, lambda row: group_dict(row, members=row["members"]), "name")


def delete_group(conn: Connection, command: cmd.DeleteGroup) -> int:
    """Delete the group; not found (as ``group_members`` says of it) when there is none."""
    deleted = int(conn.execute(delete(user_groups).where(user_groups.c.name == command.name)).rowcount)
    if not deleted:
        raise NotFoundError("group", name=command.name)
    return deleted


def add_group_members(conn: Connection, command: cmd.AddGroupMembers) -> int:
    group_id = _group_id(conn, command.group)
    wanted = _unique(command.user_ids)
    existing_users: set[int] = set()
    already: set[int] = set()
    for chunk in _chunks(wanted):
        existing_users.update(conn.execute(select(users.c.id).where(users.c.id.in_(chunk))).scalars())
        already.update(
            conn.execute(
                select(group_members.c.user_id).where(
                    group_members.c.group_id == group_id, group_members.c.user_id.in_(chunk)
                )
            ).scalars()
        )
    missing = [user_id for user_id in wanted if user_id not in existing_users]
    if missing:
        raise NotFoundError("user", id=missing[0])
    new = [{"group_id": group_id, "user_id": user_id} for user_id in wanted if user_id not in already]
    if new:
        conn.execute(insert(group_members), new)
    return len(new)


def remove_group_members(conn: Connection, command: cmd.RemoveGroupMembers) -> int:
    group_id = _group_id(conn, command.group)
    removed = 0
    for chunk in _chunks(_unique(command.user_ids)):
        removed += conn.execute(
            delete(group_members).where(group_members.c.group_id == group_id, group_members.c.user_id.in_(chunk))
        ).rowcount
    return removed


def list_group_members(conn: Connection, command: cmd.GroupMembers) -> dict[str, Any]:
    group_id = _group_id(conn, command.group)
    columns, render = _user_listing(conn)
    query = (
        select(*columns)
        .join(group_members, group_members.c.user_id == users.c.id)
        .where(group_members.c.group_id == group_id)
        .order_by(users.c.id)
        .limit(command.limit + 1)
    )
    if command.after is not None:
        query = query.where(users.c.id > command.after)
    return _page(conn.execute(query).mappings().all(), command.limit, render, "id")


# -- settings -----------------------------------------------------------------------------


def get_setting(conn: Connection, command: cmd.GetSetting) -> dict[str, Any]:
    found = conn.execute(select(settings_table).where(settings_table.c.key == command.key)).mappings().first()
    if found is None:
        raise NotFoundError("setting", key=command.key)
    return stored_setting_dict(found)


def _upsert_setting(dialect: str) -> Prepared | None:
    """One statement instead of a read and a write, where the backend has one; the hot path of a setting write."""
    statement = _UPSERTS.get(dialect)
    if statement is None and dialect in ("sqlite", "postgresql"):
        # The dialect's module is imported here, where its engine has loaded it already:
        # a daemon on SQLite never imports PostgreSQL's (a sixth of SQLAlchemy's import).
        insert_: sqlite.Insert | postgresql.Insert
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: PLC0415

            insert_ = sqlite_insert(settings_table)
        else:
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert  # noqa: PLC0415

            insert_ = postgresql_insert(settings_table)
        statement = Prepared(
            insert_.on_conflict_do_update(
                index_elements=[settings_table.c.key],
                set_={"value": insert_.excluded.value, "updated_at": insert_.excluded.updated_at},
            ),
            column_keys=("key", "value", "updated_at"),
        )
        _UPSERTS[dialect] = statement
    return statement


_UPSERTS: dict[str, Prepared] = {}


def set_setting(conn: Connection, command: cmd.SetSetting) -> dict[str, Any]:
    row = {"key": command.key, "value": command.value, "updated_at": utcnow()}
    upsert = _upsert_setting(conn.dialect.name)
    if upsert is not None:
        upsert.execute(conn, row)
    else:
        changed = conn.execute(
            update(settings_table)
            .where(settings_table.c.key == command.key)
            .values(value=command.value, updated_at=row["updated_at"])
        ).rowcount
        if not changed:
            conn.execute(insert(settings_table), row)
    return setting_dict(row)


def delete_setting(conn: Connection, command: cmd.DeleteSetting) -> int:
    deleted = int(conn.execute(delete(settings_table).where(settings_table.c.key == command.key)).rowcount)
    if not deleted:
        raise NotFoundError("setting", key=command.key)
    return deleted


def list_settings(conn: Connection, command: cmd.ListSettings) -> dict[str, Any]:
    query = select(settings_table).order_by(settings_table.c.key).limit(command.limit + 1)
    if command.after is not None:
        query = query.where(settings_table.c.key > command.after)
    rows = conn.execute(query).mappings().all()
    if command.max_bytes:
        # A page ends early once its values reach the budget (each is bounded by [db]
        # max_value_bytes, so at least one always fits): next carries on from there.
        used = 0
        for index, row in enumerate(rows[: command.limit]):
            used += len(json.dumps(row["value"])) + len(row["key"]) + _SETTING_OVERHEAD
            if index and used > command.max_bytes:
                return _page(rows[: index + 1], index, stored_setting_dict, "key")
    return _page(rows, command.limit, stored_setting_dict, "key")


# A setting's reply besides its key and value: the member names, the timestamp, JSON punctuation.
_SETTING_OVERHEAD = 64


# -- client keys ----------------------------------------------------------------------------


def add_key(conn: Connection, command: cmd.AddKey) -> dict[str, Any]:
    for field in ("name", "public_key"):
        value = getattr(command, field)
        if conn.execute(select(client_keys.c.name).where(client_keys.c[field] == value)).first() is not None:
            raise ConflictError("key", field, value)
    row = {**_key_row(command), "created_at": utcnow(), "last_seen_at": None}
    conn.execute(insert(client_keys), row)
    return key_dict(row)


def _key_row(command: cmd.AddKey) -> dict[str, Any]:
    return {"name": command.name, "public_key": command.public_key, "role": command.role}


def ensure_key(conn: Connection, command: cmd.EnsureKey) -> dict[str, Any]:
    found = conn.execute(select(client_keys).where(client_keys.c.name == command.name)).mappings().first()
    if found is not None and (found["public_key"], found["role"]) == (command.public_key, command.role):
        return key_dict(found)
    # The public key under another name (renamed by an admin) goes: one key, one name.
    conn.execute(delete(client_keys).where(client_keys.c.public_key == command.public_key))
    if found is None:
        return add_key(conn, cmd.AddKey(command.name, command.public_key, command.role))
    conn.execute(update(client_keys).where(client_keys.c.name == command.name).values(_key_row(command)))
    return key_dict({**found, **_key_row(command)})


def list_keys(conn: Connection, command: cmd.ListKeys) -> dict[str, Any]:
    query = select(client_keys).order_by(client_keys.c.name).limit(command.limit + 1)
    if command.after is not None:
        query = query.where(client_keys.c.name > command.after)
    return _page(conn.execute(query).mappings().all(), command.limit, key_dict, "name")


def remove_key(conn: Connection, command: cmd.RemoveKey) -> int:
    conn.execute(delete(key_tokens).where(key_tokens.c.name == command.name))  # its HTTP token goes with it
    removed = int(conn.execute(delete(client_keys).where(client_keys.c.name == command.name)).rowcount)
    if not removed:
        raise NotFoundError("key", name=command.name)
    return removed


def mark_keys_seen(conn: Connection, command: cmd.MarkKeysSeen) -> int:
    seen = 0
    for chunk in _chunks(_unique(command.names)):
        statement = update(client_keys).where(client_keys.c.name.in_(chunk)).values(last_seen_at=utcnow())
        seen += conn.execute(statement).rowcount
    return seen


def issue_token(conn: Connection, command: cmd.IssueToken) -> dict[str, Any]:
    key = conn.execute(select(client_keys.c.role).where(client_keys.c.name == command.name)).first()
    if key is None:
        raise NotFoundError("key", name=command.name)
    conn.execute(delete(key_tokens).where(key_tokens.c.name == command.name))
    row = {
        "name": command.name,
        "token_id": command.token_id,
        "token_hash": command.token_hash,
        "created_at": utcnow(),
        "expires_at": command.expires_at,
    }
    conn.execute(insert(key_tokens), row)
    return {**token_dict(row), "role": key.role}


def list_tokens(conn: Connection, command: cmd.ListTokens) -> dict[str, Any]:
    query = (
        select(key_tokens, client_keys.c.role)
        .join(client_keys, client_keys.c.name == key_tokens.c.name)
        .order_by(key_tokens.c.name)
        .limit(command.limit + 1)
    )
    if command.after is not None:
        query = query.where(key_tokens.c.name > command.after)
    return _page(conn.execute(query).mappings().all(), command.limit, dict, "name")


# -- the audit trail ----------------------------------------------------------------------

_AUDIT_ROW_KEYS = ("at", "who", "role", "method", "params", "outcome", "detail")
_INSERT_AUDIT = Prepared(insert(audit_table), column_keys=_AUDIT_ROW_KEYS)


# What record_all stores of one record: the entry, the outcome, the detail.
Record = tuple[AuditEntry, Outcome, str]


def audited(conn: Connection, command: cmd.Audited) -> Any:
    # Run inside the command's savepoint: a failure below takes the change and its record.
    # (The DB writer applies a batch's Audited commands itself: each change, then record_all.)
    value = execute(conn, command.command)
    record_all(conn, [record_of(command)])
    return value


def record_all(conn: Connection, records: Sequence[Record]) -> None:
    """Store ``records`` in this order, in one statement (on SQLite, one per hundred): a batch's records.

    The writer calls it once per batch, after the batch's commands and before its
    commit, with the records of the Audited changes that succeeded and of the
    denied calls: each commits with its change, and one driver call stores them all
    (on SQLite one multi-row INSERT, :func:`_insert_sqlite`; elsewhere the driver's
    ``executemany``).

    Their ``at`` is the transaction's time, or the newest record's if the clock went
    back since: ``at`` never decreases with the id, which is how a time is found
    (:func:`_first_id_since`, :func:`prune_audit`) without an index on it. The
    newest ``at`` is kept with the connection (read once from the table): the writer
    is the one connection that inserts records.
    """
    at = utcnow()
    fairy = conn.connection  # one walk to the pool's connection: its info and its driver connection
    info = fairy.info
    newest = info.get(_NEWEST_AT)
    if newest is None:
        newest = conn.execute(select(audit_table.c.at).order_by(audit_table.c.id.desc()).limit(1)).scalar()
    if newest is not None and at < newest:
        at = newest
    # The shared time converted once: no conversion per record.
    dialect = conn.dialect
    convert = info.get(_AT_CONVERTER)
    if convert is None:
        convert = info[_AT_CONVERTER] = _INSERT_AUDIT.converter(dialect, "at")
    stamp = convert(at)
    if dialect.name == "sqlite":
        _insert_sqlite(fairy.dbapi_connection, stamp, records)
    else:
        # Tuples in _AUDIT_ROW_KEYS order: no dict per record.
        _INSERT_AUDIT.execute_rows(
            conn,
            [(stamp, e.who, e.role, e.method, e.params_json, outcome, detail) for e, outcome, detail in records],
            converted=True,
        )
    # Kept even if the batch rolls back: a later record then gets this time at the earliest, still in order.
    info[_NEWEST_AT] = at


# SQLite: a batch's records as one multi-row INSERT. executemany steps, resets and
# rebinds the statement once per row (and hands the GIL over around each step);
# one statement does that once. The time is bound once (?1, shared by every row)
# and an ``ok`` record's outcome and empty detail are SQL literals: four values
# bound per record. SQLite gives the rows of one VALUES list their ids in order.
_SQLITE_AUDIT_PREFIX = f"INSERT INTO {audit_table.name} ({', '.join(_AUDIT_ROW_KEYS)}) VALUES "  # noqa: S608 - the table's own names
_SQLITE_ROW_OK = "(?1, ?, ?, ?, ?, 'ok', '')"
_SQLITE_ROW = "(?1, ?, ?, ?, ?, ?, ?)"
# Records per statement: at most 1 + 6 * 100 bound values, below the 999 of SQLite's oldest limit.
_SQLITE_ROWS_MOST = 100
# The statement of n ``ok`` records, by n (at most _SQLITE_ROWS_MOST texts; the driver caches each prepared).
_SQLITE_OK_INSERTS: dict[int, str] = {}
# The entry's fields are the record's columns from ``who`` to ``params``, in this order (extended as they are).
if AuditEntry._fields != ("who", "role", "method", "params_json"):  # pragma: no cover - a guard for a change there
    msg = f"AuditEntry's fields changed ({AuditEntry._fields}): update operations._insert_sqlite"
    raise RuntimeError(msg)


def _insert_sqlite(driver: Any, stamp: Any, records: Sequence[Record]) -> None:
    """Insert ``records`` through SQLite's ``driver`` connection, in order, in one statement per _SQLITE_ROWS_MOST.

    Run on the driver connection itself (its ``execute``: the cursor made and dropped in C).
    """
    if len(records) > _SQLITE_ROWS_MOST:
        for start in range(0, len(records), _SQLITE_ROWS_MOST):
            _insert_sqlite(driver, stamp, records[start : start + _SQLITE_ROWS_MOST])
        return
    values: list[Any] = [stamp]
    plain = True
    for entry, outcome, detail in records:
        values += entry
        if outcome != "ok" or detail:
            plain = False
    if plain:
        sql = _SQLITE_OK_INSERTS.get(len(records))
        if sql is None:
            sql = _SQLITE_OK_INSERTS[len(records)] = _SQLITE_AUDIT_PREFIX + ", ".join([_SQLITE_ROW_OK] * len(records))
    else:  # a denied call's record among them (rare): its outcome and detail are bound
        values = [stamp]
        rows = []
        for entry, outcome, detail in records:
            values += entry
            if outcome == "ok" and not detail:
                rows.append(_SQLITE_ROW_OK)
            else:
                values += (outcome, detail)
                rows.append(_SQLITE_ROW)
        sql = _SQLITE_AUDIT_PREFIX + ", ".join(rows)
    driver.execute(sql, values)


# Where record_all keeps the converter of a record's time to the driver's form, in the connection's info.
_AT_CONVERTER = "nua_audit_at_converter"

# Where record_all keeps the newest record's time, in the connection's info.
_NEWEST_AT = "nua_audit_newest_at"


def changed_outside(_conn: Connection, _command: cmd.ChangedOutside) -> None:
    # Nothing to apply: audited, its record is the point (see the command).
    return None


def record_denied(conn: Connection, command: cmd.RecordDenied) -> None:
    record_all(conn, [record_of(command)])


def record_of(command: cmd.Audited | cmd.RecordDenied) -> Record:
    """The record ``command`` leaves: an Audited change's (``ok``) or a denied call's (the role it needed)."""
    if isinstance(command, cmd.RecordDenied):
        return command.entry, "denied", f"needs role {command.needed}"[:DETAIL_MAX]
    return command.entry, "ok", ""


def list_audit(conn: Connection, command: cmd.ListAudit) -> dict[str, Any]:
    # Newest first, keyset paging on the id: each page costs its own rows. ``since`` is
    # turned into the first id at or after it, so the scan stops there.
    query = select(audit_table).order_by(audit_table.c.id.desc()).limit(command.limit + 1)
    if command.after is not None:
        query = query.where(audit_table.c.id < command.after)
    if command.since is not None:
        first = _first_id_since(conn, command.since)
        if first is None:
            return {"items": [], "next": None}
        query = query.where(audit_table.c.id >= first)
    if command.who is not None:
        query = query.where(audit_table.c.who == command.who)
    if command.method is not None:
        query = query.where(audit_table.c.method == command.method)
    return _page(conn.execute(query).mappings().all(), command.limit, audit_dict, "id")


def _first_id_since(conn: Connection, since: datetime) -> int | None:
    """An id bound of the records at or after ``since`` (``id >= bound``: those exactly); None when there are none.

    A bisection on the id, each step one lookup by the primary key (about 40 for
    a trillion ids): ``at`` never decreases with the id (:func:`record_all`).
    """
    table = audit_table
    newest = conn.execute(select(table.c.id, table.c.at >= since).order_by(table.c.id.desc()).limit(1)).first()
    if newest is None or not newest[1]:
        return None
    low = conn.execute(select(func.min(table.c.id))).scalar_one()
    # The least x in [low, high] whose first record from x on is at or after since (true at high,
    # the newest record's id); no record between x and that first one, so ``id >= x`` is the bound.
    high = newest[0]
    while low < high:
        middle = (low + high) // 2
        found = conn.execute(
            select(table.c.id, table.c.at >= since).where(table.c.id >= middle).order_by(table.c.id).limit(1)
        ).one()
        if found[1]:
            high = middle
        else:
            low = found[0] + 1  # false up to that record's id
    return int(low)


def prune_audit(conn: Connection, command: cmd.PruneAudit) -> int:
    """Delete up to ``most`` of the oldest records, those before ``before``, never the newest record; how many went.

    The oldest records are read in id order (``at`` grows with the id) up to the
    first that is not old enough: at most ``most + 1`` rows, whatever the table
    holds, with no index on ``at``. The newest record stays even when it is old:
    SQLite gives the next record the largest id + 1, and an id must never be given
    twice (a client's ``after`` refers to one). It goes once a newer one exists.
    """
    table = audit_table
    oldest = conn.execute(
        select(table.c.id, table.c.at < command.before).order_by(table.c.id).limit(command.most + 1)
    ).all()
    keep_from = None  # the first id kept
    for index, (record_id, old) in enumerate(oldest):
        if not old or index == command.most:
            keep_from = record_id
            break
    else:
        if oldest:
            keep_from = oldest[-1][0]  # every record is old: all go but the newest
    if keep_from is None:
        return 0
    return int(conn.execute(delete(table).where(table.c.id < keep_from)).rowcount)


# -- dispatch -----------------------------------------------------------------------------

Handler = Callable[[Connection, Any], Any]

# -- services added at run time ------------------------------------------------------------


def put_service(conn: Connection, command: cmd.PutService) -> dict[str, Any]:
    table = services_table
    exists = conn.execute(select(table.c.name).where(table.c.name == command.name)).first() is not None
    if command.create and exists:
        raise ConflictError("service", "name", command.name)
    if not command.create and not exists:
        raise NotFoundError("service", name=command.name)
    row = {"name": command.name, "config": command.config, "updated_at": utcnow()}
    if exists:
        conn.execute(update(table).where(table.c.name == command.name).values(row))
    else:
        conn.execute(insert(table), row)
    return service_row_dict(row)


def delete_service(conn: Connection, command: cmd.DeleteService) -> int:
    deleted = int(conn.execute(delete(services_table).where(services_table.c.name == command.name)).rowcount)
    if deleted == 0:
        raise NotFoundError("service", name=command.name)
    return deleted


def list_services(conn: Connection, command: cmd.ListServices) -> list[dict[str, Any]]:  # noqa: ARG001
    rows = conn.execute(select(services_table).order_by(services_table.c.name)).mappings()
    return [service_row_dict(row) for row in rows]


HANDLERS: dict[type[Any], Handler] = {
    cmd.AddUser: add_user,
    cmd.GetUser: get_user,
    cmd.ListUsers: list_users,
    cmd.CountUsers: count_users,
    cmd.UpdateUser: update_user,
    cmd.DeleteUsers: delete_users,
    cmd.DeleteAllUsers: delete_all_users,
    cmd.AddGroup: add_group,
    cmd.ListGroups: list_groups,
    cmd.DeleteGroup: delete_group,
    cmd.AddGroupMembers: add_group_members,
    cmd.RemoveGroupMembers: remove_group_members,
    cmd.GroupMembers: list_group_members,
    cmd.GetSetting: get_setting,
    cmd.SetSetting: set_setting,
    cmd.DeleteSetting: delete_setting,
    cmd.ListSettings: list_settings,
    cmd.AddKey: add_key,
    cmd.EnsureKey: ensure_key,
    cmd.ListKeys: list_keys,
    cmd.RemoveKey: remove_key,
    cmd.MarkKeysSeen: mark_keys_seen,
    cmd.IssueToken: issue_token,
    cmd.ListTokens: list_tokens,
    cmd.Audited: audited,
    cmd.ChangedOutside: changed_outside,
    cmd.RecordDenied: record_denied,
    cmd.ListAudit: list_audit,
    cmd.PruneAudit: prune_audit,
    cmd.PutService: put_service,
    cmd.DeleteService: delete_service,
    cmd.ListServices: list_services,
}
HANDLERS.update(cron_operations.HANDLERS)


def execute(conn: Connection, command: cmd.Command) -> Any:
    """Apply ``command`` on ``conn`` (inside a transaction) and return its JSON-ready reply."""
    return HANDLERS[type(command)](conn, command)


__all__ = ["HANDLERS", "Record", "execute", "record_all", "record_of"]
