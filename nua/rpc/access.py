"""Who is calling, and whether they may: the caller's key and role, checked against the method's.

The gateway knows each message's caller from the handshake of its connection
(the ZAP handler named the key, :mod:`nua.rpc.admission`); the dispatcher checks
each call (each member of a batch) with :func:`denial` before running anything.
With ``[zmq] auth = "none"`` (loopback or ipc only) every caller is
:data:`UNAUTHENTICATED`, an admin, as before keys existed. A method that declares
no role is denied to every caller.

What a call carries here (``caller.name``, ``caller.role``, ``method.changes``)
is what an audit record of it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nua.roles import Role
from nua.rpc.errors import ForbiddenError
from nua.rpc.registry import Method


@dataclass(frozen=True, slots=True)
class Caller:
    """The key a call comes with: its name in the key store and its role.

    ``who`` is the name its audit records and log lines give it, worked out once:
    a caller is made when its key is loaded, and serves every call it makes.
    """

    name: str
    role: Role
    who: str = field(init=False)

    def __post_init__(self) -> None:
        # Every caller is unnamed with authentication off.
        object.__setattr__(self, "who", self.name or "(auth off)")


# Every caller when authentication is off ([zmq] auth = "none").
UNAUTHENTICATED = Caller("", Role.ADMIN)


def denial(method: Method, caller: Caller) -> ForbiddenError | None:
    """The error refusing ``caller`` a call of ``method``, or ``None`` when it may call it."""
    needed = method.role
    if needed is None:
        return ForbiddenError(
            f"{method.name} declares no role, so no one may call it (its group must say @public(role=...))",
            {"method": method.name, "role_needed": None},
        )
    if caller.role.allows(needed):
        return None
    return ForbiddenError(
        f"{method.name} needs the {needed.label} role; the key {caller.name!r} has {caller.role.label}",
        {"method": method.name, "role_needed": needed.label, "key": caller.name, "role": caller.role.label},
    )


__all__ = ["UNAUTHENTICATED", "Caller", "denial"]
