"""The base class of RPC method groups: a name prefix and the services its methods use.

Built-in groups (:mod:`nua.rpc.methods`) and plugins derive from :class:`MethodGroup`
and mark their methods with :func:`nua.rpc.registry.public`.
"""

from __future__ import annotations

from typing import ClassVar

from nua.rpc.services import Services


class MethodGroup:
    """A set of RPC methods sharing the name prefix ``prefix``.

    Subclasses set ``prefix`` and mark their methods with :func:`~nua.rpc.registry.public`;
    they reach the rest of the daemon through ``self.services``.
    """

    prefix: ClassVar[str] = ""

    def __init__(self, services: Services) -> None:
        self.services = services

    @classmethod
    def enabled(cls, services: Services) -> bool:  # noqa: ARG003 - subclasses decide from the settings
        """Whether this group is served at all (``sys_fault`` only with fault injection on)."""
        return True


__all__ = ["MethodGroup"]
