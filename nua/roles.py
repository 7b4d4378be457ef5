"""The roles a client key holds, each allowing what the one below it allows and more.

``reader`` reads (get, list, count, describe, status); ``operator`` also changes
the platform's running state (settings; service and job control); ``admin`` may
do everything, user and key administration included. Every RPC method declares
the least role it needs (``@public(role=...)``, :mod:`nua.rpc.registry`).

A platform user's role (``user_add``'s ``role``, ``user_update ID role``) is another
enumeration, :data:`USER_ROLES`: what the platform's applications grant a person,
not what a client key may call.

A leaf: the model checks a key's role and a user's with it, the RPC layer a
caller's, and ``nua`` lists both in its ``--help``.
"""

from __future__ import annotations

import enum


class Role(enum.IntEnum):
    """A role; a larger value includes every smaller one."""

    READER = 1
    OPERATOR = 2
    ADMIN = 3

    # The role's name as settings, commands and replies spell it (``reader``): set once per
    # role below, a plain attribute (every call's audit entry reads it; an enum's ``name`` is a
    # descriptor costing more than the rest of the lookup).
    label: str

    def allows(self, needed: Role) -> bool:
        """Whether a caller holding this role may call a method needing ``needed``."""
        return self >= needed


for _role in Role:
    _role.label = _role.name.lower()

# Every role by its name, least first.
ROLES: dict[str, Role] = {role.label: role for role in Role}


# The roles a platform user may hold; ``user`` is a new user's.
USER_ROLES: tuple[str, ...] = ("user", "admin")


def role_named(name: str) -> Role | None:
    """The role called ``name``, or ``None``."""
    return ROLES.get(name)


__all__ = ["ROLES", "USER_ROLES", "Role", "role_named"]
