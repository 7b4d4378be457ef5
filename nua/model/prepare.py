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
from typing import Any, cast

from nua.model import commands as cmd
from nua.model.errors import InvalidError
from nua.model.password import hash_password
from nua.settings import SecuritySettings

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

_NO_SPACE = re.compile(r"^[^\s\x00-\x1f\x7f]+$")
_EMAIL = re.compile(r"^[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+$")
_ROLE = re.compile(r"^[A-Za-z0-9_.-]+$")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")
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


def _string(field: str, value: Any, max_len: int, pattern: re.Pattern[str], what: str, *, echo: bool = True) -> str:
    shown: dict[str, Any] = {"value": value} if echo else {}
    if not isinstance(value, str):
        raise InvalidError(field, f"must be a string, got {_json_type(value)}", **shown)
    if len(value) > max_len:
        raise InvalidError(field, f"must be at most {max_len} characters", **shown)
    if not pattern.match(value):
        raise InvalidError(field, f"must be {what}", **shown)
    return value


def _username(value: Any, field: str = "username") -> str:
    return _string(field, value, USERNAME_MAX, _NO_SPACE, "non-empty, without spaces or control characters")


def _email(value: Any, field: str = "email") -> str:
    return _string(field, value, EMAIL_MAX, _EMAIL, "an address of the form name@domain")


def _role(value: Any) -> str:
    return _string("role", value, ROLE_MAX, _ROLE, "non-empty letters, digits, '_', '.' or '-'")


def _display_name(value: Any) -> str:
    return _string("display_name", value, DISPLAY_NAME_MAX, _PRINTABLE, "free of control characters")


def _password(value: Any) -> str:
    return _string("password", value, PASSWORD_MAX, _NON_EMPTY, "non-empty", echo=False)


def _int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidError(field, f"must be an integer, got {_json_type(value)}", value=value)
    if value not in _ID_RANGE:
        raise InvalidError(field, "is out of range", value=value)
    return value


def _int_list(field: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        raise InvalidError(field, f"must be a list of integers, got {_json_type(value)}")
    return tuple(_int(field, item) for item in value)


def _str_list(field: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise InvalidError(field, "must be a list of strings")
    return tuple(value)


def _group_name(value: Any, field: str = "name") -> str:
    return _string(field, value, GROUP_NAME_MAX, _NO_SPACE, "non-empty, without spaces or control characters")


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


def user_list(request: Any = None) -> cmd.ListUsers:
    """``user_list(request=None)``: filters ``all``, ``ids``, ``names``, ``mails``; none means all."""
    if request is None:
        return cmd.ListUsers()
    fields = _mapping("request", request)
    for key in fields:
        if key not in USER_LIST_FILTERS:
            raise InvalidError(str(key), f"unknown filter (known: {', '.join(sorted(USER_LIST_FILTERS))})")
    show_all = fields.get("all", False)
    if not isinstance(show_all, bool):
        raise InvalidError("all", "must be true or false", value=show_all)
    return cmd.ListUsers(
        all=show_all,
        ids=_int_list("ids", fields.get("ids") or []),
        names=_str_list("names", fields.get("names") or []),
        mails=_str_list("mails", fields.get("mails") or []),
    )


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


def user_delete(ids: Any) -> cmd.DeleteUsers:
    """``user_delete(ids)``: a list of integer ids."""
    return cmd.DeleteUsers(_int_list("ids", ids))


# -- groups -------------------------------------------------------------------------------


def group_add(name: Any, source: Any = "") -> cmd.AddGroup:
    return cmd.AddGroup(_group_name(name), _string("source", source, SOURCE_MAX, _PRINTABLE, "printable"))


def group_delete(name: Any) -> cmd.DeleteGroup:
    return cmd.DeleteGroup(_group_name(name))


def group_add_members(group: Any, user_ids: Any) -> cmd.AddGroupMembers:
    return cmd.AddGroupMembers(_group_name(group, "group"), _int_list("user_ids", user_ids))


def group_remove_members(group: Any, user_ids: Any) -> cmd.RemoveGroupMembers:
    return cmd.RemoveGroupMembers(_group_name(group, "group"), _int_list("user_ids", user_ids))


def group_members(group: Any) -> cmd.GroupMembers:
    return cmd.GroupMembers(_group_name(group, "group"))


# -- settings -----------------------------------------------------------------------------


def _setting_key(key: Any) -> str:
    return _string("key", key, SETTING_KEY_MAX, _NO_SPACE, "non-empty, without spaces or control characters")


def setting_get(key: Any) -> cmd.GetSetting:
    return cmd.GetSetting(_setting_key(key))


def setting_set(key: Any, value: Any) -> cmd.SetSetting:
    """``setting_set(key, value)``: ``value`` is any JSON value (no NaN or infinity)."""
    checked_key = _setting_key(key)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidError("value", "must be a finite number")
    if value is None or isinstance(value, str | int | float):  # bool is an int: every scalar is JSON
        return cmd.SetSetting(checked_key, value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidError("value", f"must be a JSON value: {exc}") from None
    return cmd.SetSetting(checked_key, value)


__all__ = [
    "USER_ADD_FIELDS",
    "USER_LIST_FILTERS",
    "USER_UPDATE_KEYS",
    "group_add",
    "group_add_members",
    "group_delete",
    "group_members",
    "group_remove_members",
    "setting_get",
    "setting_set",
    "user_add",
    "user_delete",
    "user_get",
    "user_list",
    "user_update",
]
