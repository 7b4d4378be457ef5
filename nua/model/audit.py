"""The audit trail: who changed what, when, with which (redacted) parameters, and the calls refused.

A record is written by the DB writer in the same transaction as the change it
describes (:class:`nua.model.commands.Audited`), so an
acknowledged change always has its record and a rolled-back one never does; a
denied call gets a record of its own. What a record holds of the call's
parameters went through :func:`redact` first, in the caller's thread: no
password, password hash, secret key, token or URL password reaches the table, and
the text stored is bounded whatever the call carried.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any, Literal, NamedTuple

from sqlalchemy import BigInteger, Column, Integer, RowMapping, String, Table, Text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection

from nua.model.base import UtcDateTime, iso, metadata
from nua.settings import mask_url

Outcome = Literal["ok", "denied"]
WHO_MAX = 128
ROLE_MAX = 32
METHOD_MAX = 128
DETAIL_MAX = 255

audit_table = Table(
    "audit",
    metadata,
    # SQLite: an INTEGER PRIMARY KEY (the rowid), elsewhere 64-bit from a sequence. Ids follow
    # commit order. SQLite gives a new row the largest id + 1 (no AUTOINCREMENT: its
    # sqlite_sequence row was one more page written by every commit), so an id could come
    # back only if the newest record were deleted: the retention prune never deletes it
    # (nua.model.operations.prune_audit), and nothing else deletes records.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    # Never earlier than the record before it (the DB writer sees to it, operations.record_all),
    # so that ``at`` grows with the id: a time is found by the id (a bisection), with no index
    # on ``at``, which was one more page written by every commit.
    Column("at", UtcDateTime, nullable=False),
    Column("who", String(WHO_MAX), nullable=False),
    Column("role", String(ROLE_MAX), nullable=False),
    Column("method", String(METHOD_MAX), nullable=False),
    # JSON text, rendered (and redacted) in the caller's thread: the writer only stores it.
    Column("params", Text, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", String(DETAIL_MAX), nullable=False, default=""),
)


def upgrade_from_v1(conn: Connection) -> None:
    """Schema version 1 to 2: the audit table without its index on ``at``, and on SQLite without AUTOINCREMENT.

    On SQLite the table is rebuilt (its rows kept, with their ids): AUTOINCREMENT
    cannot be dropped otherwise. If version 1's retention had removed every record,
    SQLite would give ids from 1 again, which were given before: a record of the
    upgrade then takes the id after the last one given, and holds that mark. A
    database from before the audit trail has no table yet: ``create_all`` makes it.
    """
    if not sa_inspect(conn).has_table(audit_table.name):
        return
    if conn.dialect.name != "sqlite":
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_audit_at")
        return
    sequences = conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").first()
    last_given = (
        conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").scalar() if sequences else None
    )
    conn.exec_driver_sql("ALTER TABLE audit RENAME TO audit_v1")
    audit_table.create(conn)
    columns = ", ".join(column.name for column in audit_table.columns)
    conn.exec_driver_sql(f"INSERT INTO audit ({columns}) SELECT {columns} FROM audit_v1 ORDER BY id")  # noqa: S608 - the table's own column names
    conn.exec_driver_sql("DROP TABLE audit_v1")  # its index and its sqlite_sequence row with it
    highest = conn.exec_driver_sql("SELECT max(id) FROM audit").scalar()
    if last_given is not None and (highest is None or int(last_given) > int(highest)):
        conn.execute(
            audit_table.insert().values(
                id=int(last_given) + 1,
                at=datetime.now(UTC),
                who="nua",
                role="",
                method="schema_upgrade",
                params=json.dumps({"from": 1, "to": 2}),
                outcome="ok",
                detail="keeps the ids given by version 1 from being given again",
            )
        )


class AuditEntry(NamedTuple):
    """What a record says of one call: who made it (key name and role), the method, its redacted params.

    ``params_json`` is the params' JSON text, already redacted and bounded. Build
    an entry with :meth:`of`, which does that: an entry is trusted by the writer,
    as commands are. Immutable; a named tuple rather than a frozen dataclass, as
    one is built at every audited call and costs less than half as much to make.
    """

    who: str
    role: str
    method: str
    params_json: str = "{}"

    @classmethod
    def of(cls, who: str, role: str, method: str, params: Mapping[str, Any] | None = None) -> AuditEntry:
        """An entry for a call of ``method`` with ``params`` (by name), redacted and bounded."""
        return cls(
            _bounded(who, WHO_MAX), _bounded(role, ROLE_MAX), _bounded(method, METHOD_MAX), redacted_json(params or {})
        )

    @classmethod
    def of_named(cls, who: str, role: str, method: str, names: tuple[str, ...], values: Sequence[Any]) -> AuditEntry:
        """:meth:`of` the params ``dict(zip(names, values))``: a call's positional params, named by its signature.

        The usual call's (a few plain values) are written without that dict, and
        the entry made as the tuple it is (a named tuple's own constructor, a
        Python function, cost as much again).
        """
        text = _named_json(names, values) if len(values) <= ITEMS_MAX else None
        if (
            text is None
            or len(text) > PARAMS_MAX_BYTES
            or len(who) > WHO_MAX
            or len(role) > ROLE_MAX
            or len(method) > METHOD_MAX
        ):
            return cls.of(who, role, method, dict(zip(names, values, strict=True)))
        return _tuple_new(cls, (who, role, method, text))

    @property
    def params(self) -> Any:
        """The redacted params, as a record shows them."""
        return json.loads(self.params_json)


_tuple_new = tuple.__new__


def _bounded(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def audit_dict(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A record as replies carry it."""
    return {
        "id": row["id"],
        "at": iso(row["at"]),
        "who": row["who"],
        "role": row["role"],
        "method": row["method"],
        "params": json.loads(row["params"]),
        "outcome": row["outcome"],
        "detail": row["detail"],
    }


# -- redaction ------------------------------------------------------------------------------

REDACTED = "***"
# The longest string kept whole; a longer one is cut, with a marker saying how much went.
STRING_MAX = 256
# Items kept of one list or object; the rest is counted in a marker.
ITEMS_MAX = 50
# Nesting kept; deeper values are replaced by a marker.
DEPTH_MAX = 8
# The largest params text a record stores (JSON); past it, a cut copy of the text (already redacted).
PARAMS_MAX_BYTES = 4096

# Words that make a name (a parameter, an object key, a setting's key) name a secret.
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "pw",
        "privkey",
        "sshkey",
        "passphrase",
        "secret",
        "token",
        "credential",
        "credentials",
        "hash",
        "private",
        "apikey",
        "authorization",
        "cookie",
        "salt",
    }
)
# "key" is a secret after these words (``api_key``, ``secret_key``); alone it names a
# setting, and ``public_key`` or ``server_key`` (a CURVE public key) is no secret.
SECRET_KEY_QUALIFIERS = frozenset({"api", "access", "secret", "private", "signing", "encryption", "master", "session"})
# An object holding one of these naming a secret has its "value" redacted: user_update(key="password", value=...).
NAME_FIELDS = ("key", "name", "field")
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def secret_name(name: str) -> bool:
    """Whether ``name`` (``password_hash``, ``secretKey``, ``db.token``, ``api-key``) names a secret."""
    known = _KNOWN_NAMES.get(name)
    if known is not None:
        return known
    # Most names hold no word of a secret at all. The hint is searched in the lowered name
    # (a case-insensitive search cost seven times as much): every word _secret_words finds
    # is ASCII, and lowering keeps an ASCII run of the name a run of the lowered one.
    secret = _HINT.search(name.lower()) is not None and _secret_words(name)
    if len(_KNOWN_NAMES) < _KNOWN_NAMES_MAX and len(name) <= _KNOWN_NAME_LENGTH_MAX:
        _KNOWN_NAMES[name] = secret
    return secret


# Every secret word holds one of these (lowered): a quick refusal for the other names.
_HINT = re.compile(r"pass|pw|secret|token|credential|hash|priv|key|auth|cookie|salt")
# Names are few (parameter names, setting keys): what short ones are is remembered, up to a bound
# (past it, names are worked out each time).
_KNOWN_NAMES: dict[str, bool] = {}
_KNOWN_NAMES_MAX = 4096
_KNOWN_NAME_LENGTH_MAX = 128


def _secret_words(name: str) -> bool:
    words = [word.lower() for word in _WORD.findall(name)]
    for index, word in enumerate(words):
        if word in SECRET_WORDS or word.startswith(("password", "passwd", "secret", "token")):
            return True
        if word == "key" and index and words[index - 1] in SECRET_KEY_QUALIFIERS:
            return True
    return False


def redact(value: Any) -> Any:
    """``value`` (a call's params) as a record holds it: see :func:`redacted_json`, whose text this is decoded."""
    return json.loads(redacted_json(value))


def redacted_json(value: Any) -> str:
    """The JSON text a record stores of ``value`` (a call's params): secrets replaced by ``***``, bounded.

    Recursively through lists and objects: the value of any key that names a
    secret (:func:`secret_name`) is replaced, as is the ``value`` beside a
    ``key``/``name``/``field`` naming one; a string holding a URL has the URL's
    password masked. Strings, containers and nesting are cut with markers, and
    the whole text is kept within :data:`PARAMS_MAX_BYTES` (ASCII: non-ASCII
    characters are escaped).

    It runs in the caller's thread for every audited call (the gateway's): the
    common case (a few scalars and short strings) takes no detour, and the
    writer stores the text as it is.
    """
    if type(value) is dict:
        text = _plain_json(value)  # what the general path gives such params, without copying them
        if text is not None and len(text) <= PARAMS_MAX_BYTES:
            return text
    redacted = _redact(value, DEPTH_MAX)
    text = json.dumps(redacted)
    if len(text) <= PARAMS_MAX_BYTES:
        return text
    # The text is escaped again inside the marker: shorten until the whole fits.
    keep = PARAMS_MAX_BYTES
    while True:
        kept = text[:keep]
        cut = json.dumps({"truncated": f"{kept}… [{len(text) - len(kept)} more characters]"})
        if len(cut) <= PARAMS_MAX_BYTES:
            return cut
        keep = keep * 3 // 4


def _plain_json(params: dict[Any, Any]) -> str | None:
    """``json.dumps(params)`` when :func:`_redact` would keep ``params`` as they are, else None: the usual call's.

    See :func:`_named_json`; the names must be strings.
    """
    if len(params) > ITEMS_MAX:
        return None
    return _named_json(tuple(params), tuple(params.values()), remember=False)


def _named_json(names: tuple[Any, ...], values: Sequence[Any], *, remember: bool = True) -> str | None:
    """The JSON text of the object of ``names`` and ``values`` if :func:`_redact` keeps them as they are, else None.

    A few names, none naming a secret, and values that are plain strings (short,
    ASCII, no URL), integers, floats, booleans or nulls, none of ``key``/``name``/``field``
    naming a secret (the ``value`` beside it would be redacted). The text is put
    together here, as ``json.dumps`` writes it, in one pass with the test: it runs
    at every audited call, where json.dumps cost more than the test. What the
    names give (each one's text, whether its value must be looked at as a name)
    is worked out once per tuple of names: a method's are always the same. Not
    ``remember``: names a client chose (a call's keywords), which must not fill
    the memory of the methods' own.
    """
    shape = _SHAPES.get(names)
    if shape is None:
        shape = _shape(names, remember=remember)
    if shape is False or len(values) != len(shape):
        return None
    parts = []
    for (prefix, names_a_field), item in zip(shape, values, strict=True):  # lengths checked above
        kind = type(item)
        if kind is str:
            if len(item) > STRING_MAX or "://" in item or not item.isascii() or (names_a_field and secret_name(item)):
                return None
            parts.append(prefix + _json_string(item))
        elif kind is int:
            parts.append(prefix + _int_text(item))
        elif kind is bool:
            parts.append(prefix + ("true" if item else "false"))
        elif item is None:
            parts.append(prefix + "null")
        elif kind is float:
            # json.dumps spells a float by its repr, but NaN and Infinity its own way.
            parts.append(prefix + (_float_text(item) if math.isfinite(item) else json.dumps(item)))
        else:
            return None
    return "".join(parts) + "}" if parts else "{}"


_int_text = int.__repr__
_float_text = float.__repr__
# A name's part of the text, and whether its value names another's (``key``: a setting's).
_Shape = tuple[tuple[str, bool], ...]


def _shape(names: tuple[Any, ...], *, remember: bool) -> _Shape | Literal[False]:
    """What ``names`` give :func:`_named_json` (``False``: a name that is not plain, or names a secret).

    Each name's part begins the object (``{"key": ``) or follows a value (``, "value": ``).
    """
    shape: _Shape | Literal[False] = False
    if all(type(name) is str and _plain_string(name) and not secret_name(name) for name in names):
        shape = tuple(
            (f"{', ' if index else '{'}{_json_string(name)}: ", name in NAME_FIELDS) for index, name in enumerate(names)
        )
    if remember and len(_SHAPES) < _KNOWN_NAMES_MAX:
        _SHAPES[names] = shape
    return shape


# Shapes by their names: the methods' positional names (the registry's, bounded as _KNOWN_NAMES all the same).
_SHAPES: dict[tuple[Any, ...], _Shape | Literal[False]] = {}


def _plain_string(text: str) -> bool:
    return len(text) <= STRING_MAX and text.isascii() and "://" not in text


# What JSON decoding gives besides containers and strings: kept as they are.
_SCALARS = frozenset({int, float, bool, type(None)})


def _redact(value: Any, depth: int) -> Any:
    if type(value) in _SCALARS or isinstance(value, bool | int | float):  # subclasses (an IntEnum) too
        return value
    if isinstance(value, str):
        return _string(str(value))
    if depth <= 0:
        return "[nested too deep]"
    if isinstance(value, Mapping):
        return _mapping(value, depth)
    if isinstance(value, list | tuple):
        items = [_redact(item, depth - 1) for item in value[:ITEMS_MAX]]
        if len(value) > ITEMS_MAX:
            items.append(f"[{len(value) - ITEMS_MAX} more items]")
        return items
    return _string(f"[{type(value).__name__}]")


def _mapping(value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    value_is_secret = False
    for field_name in NAME_FIELDS:
        named = value.get(field_name)
        if type(named) is str and secret_name(named):
            value_is_secret = True
            break
    result: dict[str, Any] = {}
    for index, (key, item) in enumerate(value.items()):
        if index == ITEMS_MAX:
            result["…"] = f"[{len(value) - ITEMS_MAX} more keys]"
            break
        name = _string(key if type(key) is str else str(key))
        if secret_name(name) or (value_is_secret and name == "value"):
            result[name] = REDACTED
        else:
            result[name] = item if type(item) in _SCALARS else _redact(item, depth - 1)
    return result


def _string(text: str) -> str:
    if _plain_string(text):
        return text  # the usual string: nothing to mask, cut or repair
    if "://" in text:
        text = mask_url(text)
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate cannot be stored
    if len(text) > STRING_MAX:
        return f"{text[:STRING_MAX]}… [{len(text) - STRING_MAX} more characters]"
    return text


__all__ = [
    "DETAIL_MAX",
    "REDACTED",
    "AuditEntry",
    "Outcome",
    "audit_dict",
    "audit_table",
    "redact",
    "redacted_json",
    "secret_name",
    "upgrade_from_v1",
]
