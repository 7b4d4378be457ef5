"""The event each committed change of the database makes: ``user.changed``, ``setting.changed``, ...

The DB writer publishes them once the batch holding the change has committed (and
only for a command that succeeded), so an event never reports a change that a
rollback or an outage undid; a change that changed nothing (deleting ids that do
not exist) makes none. The facts say what changed and who changed it (``by``: the
key name of the RPC call, when the change came from one), never a value: not a
setting's value, a password (hash) or a public key.

Not here: the owner's key the gateway registers at each start (:class:`EnsureKey`,
bookkeeping), and the server key rotation (written to files after its record
commits: the RPC method publishes it once the files are written).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nua.model import commands as cmd

# The event of a command that succeeded with ``result``: its kind and facts, or None (nothing changed).
_Maker = Callable[[Any, Any], tuple[str, dict[str, Any]] | None]


def _user_added(command: cmd.AddUser, result: Any) -> tuple[str, dict[str, Any]]:
    user_id = result.get("id") if isinstance(result, dict) else command.id
    return "user.changed", {"change": "add", "id": user_id, "username": command.username}


def _user_updated(command: cmd.UpdateUser, _result: Any) -> tuple[str, dict[str, Any]]:
    field = "password" if command.field == "password_hash" else command.field
    return "user.changed", {"change": "update", "id": command.id, "field": field}


def _counted(kind: str, change: str, **facts: Any) -> tuple[str, dict[str, Any]] | None:
    return None if facts.get("count") == 0 else (kind, {"change": change, **facts})


_MAKERS: dict[type[Any], _Maker] = {
    cmd.AddUser: _user_added,
    cmd.UpdateUser: _user_updated,
    cmd.DeleteUsers: lambda c, n: _counted("user.changed", "delete", ids=list(c.ids), count=n),
    cmd.DeleteAllUsers: lambda _c, n: _counted("user.changed", "delete_all", count=n),
    cmd.AddGroup: lambda c, _r: ("group.changed", {"change": "add", "name": c.name}),
    cmd.DeleteGroup: lambda c, n: _counted("group.changed", "delete", name=c.name, count=n),
    cmd.AddGroupMembers: lambda c, n: _counted("group.changed", "add_members", name=c.group, count=n),
    cmd.RemoveGroupMembers: lambda c, n: _counted("group.changed", "remove_members", name=c.group, count=n),
    cmd.SetSetting: lambda c, _r: ("setting.changed", {"change": "set", "key": c.key}),
    cmd.DeleteSetting: lambda c, n: _counted("setting.changed", "delete", key=c.key, count=n),
    cmd.AddKey: lambda c, _r: ("key.changed", {"change": "add", "name": c.name, "role": c.role}),
    cmd.RemoveKey: lambda c, n: _counted("key.changed", "remove", name=c.name, count=n),
    # A token's id names it, and is no secret; its expiry says until when it works.
    cmd.IssueToken: lambda c, r: (
        "key.changed",
        {"change": "token", "name": c.name, "token_id": c.token_id, "expires_at": r["expires_at"]},
    ),
    cmd.PutService: lambda c, _r: ("service.changed", {"change": "add" if c.create else "update", "name": c.name}),
    cmd.DeleteService: lambda c, n: _counted("service.changed", "remove", name=c.name, count=n),
}


def change_event(message: Any, result: Any) -> tuple[str, dict[str, Any]] | None:
    """The kind and facts of the event ``message`` made by committing with ``result``; ``None`` if it makes none."""
    by = None
    if isinstance(message, cmd.Audited):
        message, by = message.command, message.entry.who
    maker = _MAKERS.get(type(message))  # exact type: an EnsureKey is not an AddKey here
    if maker is None:
        return None
    made = maker(message, result)
    if made is None:
        return None
    if by is not None:
        made[1]["by"] = by  # each maker builds its facts afresh: added in place, not copied
    return made


__all__ = ["change_event"]
