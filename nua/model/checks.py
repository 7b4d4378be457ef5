"""Turn what a client sent into a ready command, or an InvalidError naming the field.

This runs in the caller's thread (the RPC layer's), before anything reaches the DB
writer: it checks types and shapes, fills defaults, and hashes passwords, which
is slow on purpose. The writer then trusts its commands and spends its serial
section on database work only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from nua import bearer_tokens, curve_keys
from nua.model import commands as cmd
from nua.model.audit import METHOD_MAX, WHO_MAX
from nua.model.errors import InvalidError
from nua.model.key import NAME_MAX as KEY_NAME_MAX
from nua.model.password import hash_password
from nua.model.text import codepoint, encodable, first_bidi_control, first_invisible, json_depth, nfc
from nua.roles import ROLES, USER_ROLES, role_named
from nua.settings import CONFIGURATION_SECTIONS, RpcSettings, SecuritySettings

# Ids travel as JSON numbers: keep new ones exactly representable in a double.
MAX_NEW_ID = 2**53 - 1
# Any id a lookup may name fits the column (64-bit).
_ID_RANGE = range(-(2**63), 2**63)

USERNAME_MAX = 254
EMAIL_MAX = 254
ROLE_MAX = 32
DISPLAY_NAME_MAX = 512
PASSWORD_MAX = 4096
GROUP_NAME_MAX = 128
SOURCE_MAX = 128
SETTING_KEY_MAX = 255
# How deeply a setting's value may nest. Python's JSON reads and writes nesting by
# recursion: a value a few hundred levels deep could be stored, then fail to load
# or to encode in the thread that reads it, for every client (a poisoned row).
MAX_VALUE_DEPTH = 64

_NO_SPACE = re.compile(r"^[^\s\x00-\x1f\x7f]+$")
_EMAIL = re.compile(r"^[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+$")
_ROLE = re.compile(r"^[A-Za-z0-9_.-]+$")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$")
_NON_EMPTY = re.compile(r"^.+$", re.DOTALL)

USER_ADD_FIELDS = frozenset({"username", "email", "password", "id", "role", "display_name", "salt"})
# What user_update's key may name, and the column each one sets.
USER_UPDATE_KEYS: dict[str, cmd.UserField] = {
    "username": "username",
    "email": "email",
    "role": "role",
    "display_name": "display_name",
    "password": "password_hash",
}
USER_LIST_FILTERS = frozenset({"all", "ids", "names", "mails"})


# -- field checks -------------------------------------------------------------------------


def _text(field: str, value: Any, max_len: int, *, echo: bool = True) -> str:
    """A string UTF-8 can encode, of at most ``max_len`` characters.

    The value is echoed in the error only when it is short and encodable: an
    error reply must itself be sendable, and small.
    """
    if not isinstance(value, str):
        shown: dict[str, Any] = {"value": value} if echo else {}
        raise InvalidError(field, f"must be a string, got {_json_type(value)}", **shown)
    if not encodable(value):
        raise InvalidError(field, "must be valid Unicode text (it holds a lone surrogate, which UTF-8 cannot encode)")
    if len(value) > max_len:
        raise InvalidError(field, f"must be at most {max_len} characters")
    return value


def _string(field: str, value: Any, max_len: int, pattern: re.Pattern[str], what: str, *, echo: bool = True) -> str:
    text = _text(field, value, max_len, echo=echo)
    if not pattern.match(text):
        shown: dict[str, Any] = {"value": text} if echo else {}
        raise InvalidError(field, f"must be {what}", **shown)
    return text


def _name(field: str, value: Any, max_len: int, pattern: re.Pattern[str], what: str) -> str:
    """A name people compare: NFC, nothing invisible (control, format, bidi, zero-width, spaces)."""
    text = nfc(_text(field, value, max_len))
    hidden = first_invisible(text, spaces=False)
    if hidden is not None:
        reason = f"must not contain spaces, control, format or other invisible characters (found {codepoint(hidden)})"
        raise InvalidError(field, reason, value=text)
    return _string(field, text, max_len, pattern, what)  # NFC may lengthen a string: checked again


def _searched(field: str, value: Any, max_len: int) -> str:
    """A string a query compares with stored names: :func:`_text` without NUL.

    No stored name holds a NUL (every rule for names refuses control characters),
    and PostgreSQL refuses the character in any text parameter: sent, it would
    fail the query as a database error, logged as a bug on every call.
    """
    text = _text(field, value, max_len)
    if "\x00" in text:
        raise InvalidError(field, "must not contain NUL (U+0000)")
    return text


def _lookup(field: str, value: Any, max_len: int) -> str:
    """A name to look up: any non-empty encodable string without NUL, in NFC as names are stored.

    Not held to the other rules of new names, so that a row stored before them can
    still be found, shown and removed.
    """
    text = nfc(_searched(field, value, max_len))
    if not text:
        raise InvalidError(field, "must not be empty")
    return text


def _username(value: Any, field: str = "username") -> str:
    return _name(field, value, USERNAME_MAX, _NO_SPACE, "non-empty, without spaces or control characters")


def _email(value: Any, field: str = "email") -> str:
    return _name(field, value, EMAIL_MAX, _EMAIL, "an address of the form name@domain")


def _role(value: Any) -> str:
    """A user's role: one of :data:`nua.roles.USER_ROLES`, checked where it is written."""
    role = _string("role", value, ROLE_MAX, _ROLE, f"one of {', '.join(USER_ROLES)}")
    if role not in USER_ROLES:
        raise InvalidError("role", f"must be one of {', '.join(USER_ROLES)}", value=role)
    return role


def _display_name(value: Any) -> str:
    text = nfc(_text("display_name", value, DISPLAY_NAME_MAX))
    hidden = first_bidi_control(text)
    if hidden is not None:
        reason = f"must not contain bidirectional controls (found {codepoint(hidden)})"
        raise InvalidError("display_name", reason, value=text)
    return _string("display_name", text, DISPLAY_NAME_MAX, _PRINTABLE, "free of control characters")


def _password(value: Any) -> str:
    return _string("password", value, PASSWORD_MAX, _NON_EMPTY, "non-empty", echo=False)


def _int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidError(field, f"must be an integer, got {_json_type(value)}", value=value)
    if value not in _ID_RANGE:
        raise InvalidError(field, "is out of range", value=value)
    return value


def _int_list(field: str, value: Any, most: int | None = None) -> tuple[int, ...]:
    """A list of ids; with ``most``, at most that many (one call must stay a small piece of writer time)."""
    if not isinstance(value, list | tuple):
        raise InvalidError(field, f"must be a list of integers, got {_json_type(value)}")
    if most is not None and len(value) > most:
        raise InvalidError(field, f"may hold at most {most} ids; split the call")
    return tuple(_int(field, item) for item in value)


def _lookup_list(field: str, value: Any, max_len: int) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise InvalidError(field, f"must be a list of strings, got {_json_type(value)}")
    return tuple(_lookup(field, item, max_len) for item in value)


def _group_name(value: Any, field: str = "name") -> str:
    return _name(field, value, GROUP_NAME_MAX, _NO_SPACE, "non-empty, without spaces or control characters")


def _group_lookup(value: Any, field: str = "group") -> str:
    return _lookup(field, value, GROUP_NAME_MAX)


def _page(limit: Any, rpc: RpcSettings) -> int:
    """``limit``, or the default page size; -32602 naming ``limit`` beyond ``[rpc] max_page_size``."""
    most = max(1, rpc.max_page_size)
    if limit is None:
        return max(1, min(rpc.page_size, most))
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise InvalidError("limit", f"must be an integer from 1 to {most} (the largest page)", value=limit)
    return limit


def _id_cursor(after: Any) -> int | None:
    return None if after is None else _int("after", after)


def _name_cursor(after: Any, max_len: int) -> str | None:
    # Not normalised: the cursor is a name exactly as the previous page gave it.
    return None if after is None else _searched("after", after, max_len)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _mapping(field: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidError(field, f"must be an object, got {_json_type(value)}")
    return cast("Mapping[str, Any]", value)


# -- users --------------------------------------------------------------------------------


def user_add(data: Any, security: SecuritySettings) -> cmd.AddUser:
    """``user_add(user_data)``: check the dict and hash its password.

    Keys: username, email, password (required); id, role, display_name
    (optional); salt (accepted and ignored: the hash makes its own).
    """
    fields = _mapping("user_data", data)
    for key in fields:
        if key not in USER_ADD_FIELDS:
            raise InvalidError(str(key), f"unknown field (known: {', '.join(sorted(USER_ADD_FIELDS))})")
    for key in ("username", "email", "password"):
        if key not in fields:
            raise InvalidError(key, "is required")
    new_id = fields.get("id")
    if new_id is not None:
        new_id = _int("id", new_id)
        if new_id > MAX_NEW_ID:
            raise InvalidError("id", f"must be at most {MAX_NEW_ID}", value=new_id)
    username = _username(fields["username"])
    email = _email(fields["email"])
    role = _role(fields.get("role", "user"))
    display_name = _display_name(fields.get("display_name", ""))
    password_hash = hash_password(_password(fields["password"]), security)
    return cmd.AddUser(
        username=username,
        email=email,
        password_hash=password_hash,
        id=new_id,
        role=role,
        display_name=display_name,
    )


def user_get(user_id: Any) -> cmd.GetUser:
    return cmd.GetUser(_int("id", user_id))


def user_list(request: Any = None, limit: Any = None, after: Any = None, *, rpc: RpcSettings) -> cmd.ListUsers:
    """``user_list(request=None, limit=None, after=None)``: one page of users ordered by id.

    ``request`` filters by ``ids``, ``names`` and ``mails`` (a user matching any of
    them is listed; no filter, or ``all``, lists every user); paging applies to
    what the filters select. The filters hold at most ``[rpc] max_page_size``
    values in all (each matches at most one user), so that one call stays small.
    """
    page, cursor = _page(limit, rpc), _id_cursor(after)
    if request is None:
        return cmd.ListUsers(limit=page, after=cursor)
    fields = _mapping("request", request)
    for key in fields:
        if key not in USER_LIST_FILTERS:
            raise InvalidError(str(key), f"unknown filter (known: {', '.join(sorted(USER_LIST_FILTERS))})")
    show_all = fields.get("all", False)
    if not isinstance(show_all, bool):
        raise InvalidError("all", "must be true or false", value=show_all)
    ids = _int_list("ids", fields.get("ids") or [])
    names = _lookup_list("names", fields.get("names") or [], USERNAME_MAX)
    mails = _lookup_list("mails", fields.get("mails") or [], EMAIL_MAX)
    if len(ids) + len(names) + len(mails) > rpc.max_page_size:
        reason = f"ids, names and mails may hold at most {rpc.max_page_size} values in all; split the request"
        raise InvalidError("request", reason)
    return cmd.ListUsers(all=show_all, ids=ids, names=names, mails=mails, limit=page, after=cursor)


def user_update(user_id: Any, key: Any, value: Any, security: SecuritySettings) -> cmd.UpdateUser:
    """``user_update(id, key, value)``: key is one of username, email, role, display_name, password."""
    checked_id = _int("id", user_id)
    if not isinstance(key, str) or key not in USER_UPDATE_KEYS:
        raise InvalidError("key", f"must be one of {', '.join(USER_UPDATE_KEYS)}", value=key)
    field = USER_UPDATE_KEYS[key]
    if field == "password_hash":
        return cmd.UpdateUser(id=checked_id, field=field, value=hash_password(_password(value), security))
    checks = {"username": _username, "email": _email, "role": _role, "display_name": _display_name}
    new_value = checks[field](value)
    return cmd.UpdateUser(id=checked_id, field=field, value=new_value)


def user_delete(ids: Any, most: int | None = None) -> cmd.DeleteUsers:
    """``user_delete(ids)``: a list of integer ids (at most ``most``: the RPC layer's ``[rpc] max_page_size``)."""
    return cmd.DeleteUsers(_int_list("ids", ids, most))


# -- groups -------------------------------------------------------------------------------


def group_add(name: Any, source: Any = "") -> cmd.AddGroup:
    return cmd.AddGroup(_group_name(name), _string("source", source, SOURCE_MAX, _PRINTABLE, "printable"))


def group_list(limit: Any = None, after: Any = None, *, rpc: RpcSettings) -> cmd.ListGroups:
    return cmd.ListGroups(limit=_page(limit, rpc), after=_name_cursor(after, GROUP_NAME_MAX))


def group_delete(name: Any) -> cmd.DeleteGroup:
    return cmd.DeleteGroup(_group_lookup(name, "name"))


def group_add_members(group: Any, user_ids: Any, most: int | None = None) -> cmd.AddGroupMembers:
    return cmd.AddGroupMembers(_group_lookup(group), _int_list("user_ids", user_ids, most))


def group_remove_members(group: Any, user_ids: Any, most: int | None = None) -> cmd.RemoveGroupMembers:
    return cmd.RemoveGroupMembers(_group_lookup(group), _int_list("user_ids", user_ids, most))


def group_members(group: Any, limit: Any = None, after: Any = None, *, rpc: RpcSettings) -> cmd.GroupMembers:
    return cmd.GroupMembers(_group_lookup(group), limit=_page(limit, rpc), after=_id_cursor(after))


# -- settings -----------------------------------------------------------------------------


def _setting_key(key: Any) -> str:
    """An application setting's key: a name outside the configuration's sections.

    ``zmq.port`` or ``db.url`` would look like the daemon's configuration and mean
    nothing to it: the configuration is the settings file and the ``NUA_*``
    variables (read with ``sys_config``, changed where they are written), never a
    row here. So a key whose first dotted part names a configuration section
    (``server``, ``zmq``, ``db``, ... and ``services``) is refused.
    """
    checked = _name("key", key, SETTING_KEY_MAX, _NO_SPACE, "non-empty, without spaces or control characters")
    section = checked.split(".", 1)[0]
    if section.lower() in CONFIGURATION_SECTIONS:
        reason = (
            f"must not begin with {section!r}: [{section}] is the daemon's configuration (the settings file and"
            " NUA_* variables; see `nua config`), not an application setting; use another prefix, e.g. site."
        )
        raise InvalidError("key", reason, value=checked)
    return checked


def setting_get(key: Any) -> cmd.GetSetting:
    return cmd.GetSetting(_lookup("key", key, SETTING_KEY_MAX))


def setting_delete(key: Any) -> cmd.DeleteSetting:
    return cmd.DeleteSetting(_lookup("key", key, SETTING_KEY_MAX))


def setting_list(limit: Any = None, after: Any = None, *, rpc: RpcSettings) -> cmd.ListSettings:
    """A page of settings that fits in half of ``[rpc] max_reply_bytes`` however large the values."""
    page, cursor = _page(limit, rpc), _name_cursor(after, SETTING_KEY_MAX)
    return cmd.ListSettings(limit=page, after=cursor, max_bytes=max(1, rpc.max_reply_bytes // 2))


# -- client keys --------------------------------------------------------------------------

_KEY_NAME = re.compile(r"^[A-Za-z0-9_.@-]+$")


def _key_name(value: Any) -> str:
    return _string("name", value, KEY_NAME_MAX, _KEY_NAME, "non-empty letters, digits, '_', '.', '@' or '-'")


def key_role(value: Any) -> str:
    """A role's name: ``reader``, ``operator`` or ``admin``."""
    if not isinstance(value, str) or role_named(value) is None:
        raise InvalidError("role", f"must be one of {', '.join(ROLES)}", value=value)
    return value


def public_key(value: Any) -> str:
    """A CURVE public key: 40 characters of Z85."""
    if not curve_keys.is_key(value):
        raise InvalidError("public_key", "must be a CURVE public key: 40 characters of Z85", value=value)
    return cast("str", value)


def key_add(name: Any, public: Any, role: Any) -> cmd.AddKey:
    return cmd.AddKey(_key_name(name), public_key(public), key_role(role))


def key_ensure(name: Any, public: Any, role: Any) -> cmd.EnsureKey:
    return cmd.EnsureKey(_key_name(name), public_key(public), key_role(role))


def key_list(limit: Any = None, after: Any = None, *, rpc: RpcSettings) -> cmd.ListKeys:
    return cmd.ListKeys(limit=_page(limit, rpc), after=_name_cursor(after, KEY_NAME_MAX))


def key_remove(name: Any) -> cmd.RemoveKey:
    return cmd.RemoveKey(_lookup("name", name, KEY_NAME_MAX))


# The longest a token may live: ten years.
MAX_TOKEN_TTL_S = 10 * 365 * 86400.0


def key_token(name: Any, token_id: Any, token_hash: Any, ttl_s: Any, now: datetime | None = None) -> cmd.IssueToken:
    """``key_token``: the key ``name``'s HTTP token (its id, its secret's SHA-256), valid ``ttl_s`` seconds."""
    if not bearer_tokens.is_id(token_id):
        raise InvalidError("token_id", "must be 16 lowercase hex digits")
    if not bearer_tokens.is_hash(token_hash):
        raise InvalidError("token_hash", "must be a SHA-256 digest: 64 lowercase hex digits")
    if (
        isinstance(ttl_s, bool)
        or not isinstance(ttl_s, int | float)
        or not math.isfinite(ttl_s)
        or not 1 <= ttl_s <= MAX_TOKEN_TTL_S
    ):
        raise InvalidError("ttl_s", f"must be a number of seconds from 1 to {MAX_TOKEN_TTL_S:.0f}", value=ttl_s)
    start = now or datetime.now(UTC)
    return cmd.IssueToken(_lookup("name", name, KEY_NAME_MAX), token_id, token_hash, start + timedelta(seconds=ttl_s))


def _too_large(size: int, max_bytes: int) -> InvalidError:
    return InvalidError("value", f"must be at most {max_bytes} bytes of JSON text (UTF-8), got {size}")


def setting_set(key: Any, value: Any, max_value_bytes: int) -> cmd.SetSetting:
    """``setting_set(key, value)``: ``value`` is any JSON value (no NaN or infinity).

    Its JSON text, in UTF-8, is at most ``max_value_bytes`` (``[db] max_value_bytes``),
    it nests at most :data:`MAX_VALUE_DEPTH` levels, and every string in it (object
    keys too) must be encodable.
    """
    checked_key = _setting_key(key)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidError("value", "must be a finite number")
    if value is None or isinstance(value, bool | float):  # a few bytes each
        return cmd.SetSetting(checked_key, value)
    if isinstance(value, str) and value.isascii() and len(value) + 2 <= max_value_bytes:  # the hot path
        return cmd.SetSetting(checked_key, value)
    if json_depth(value) > MAX_VALUE_DEPTH:
        raise InvalidError("value", f"must nest arrays and objects at most {MAX_VALUE_DEPTH} levels deep")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidError("value", f"must be a JSON value: {exc}") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        reason = "must hold only valid Unicode text (a string holds a lone surrogate, which UTF-8 cannot encode)"
        raise InvalidError("value", reason) from None
    if size > max_value_bytes:
        raise _too_large(size, max_value_bytes)
    return cmd.SetSetting(checked_key, value)


# -- the audit trail ----------------------------------------------------------------------

# The longest ``since`` accepted: an ISO 8601 timestamp with microseconds and an offset is 32 characters.
SINCE_MAX = 64


def _since(value: Any) -> datetime | None:
    """An ISO 8601 timestamp (UTC when it names no offset), as ``audit_list``'s ``since``."""
    if value is None:
        return None
    text = _text("since", value, SINCE_MAX)
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidError("since", "must be an ISO 8601 timestamp (2026-01-31T12:00:00+00:00)", value=text) from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def audit_list(
    since: Any = None, who: Any = None, method: Any = None, limit: Any = None, after: Any = None, *, rpc: RpcSettings
) -> cmd.ListAudit:
    """``audit_list(since=None, who=None, method=None, limit=None, after=None)``: a page of records, newest first."""
    return cmd.ListAudit(
        since=_since(since),
        who=None if who is None else _lookup("who", who, WHO_MAX),
        method=None if method is None else _lookup("method", method, METHOD_MAX),
        limit=_page(limit, rpc),
        after=_id_cursor(after),
    )


__all__ = [
    "USER_ADD_FIELDS",
    "USER_LIST_FILTERS",
    "USER_UPDATE_KEYS",
    "audit_list",
    "group_add",
    "group_add_members",
    "group_delete",
    "group_list",
    "group_members",
    "group_remove_members",
    "setting_delete",
    "setting_get",
    "setting_list",
    "setting_set",
    "user_add",
    "user_delete",
    "user_get",
    "user_list",
    "user_update",
]
