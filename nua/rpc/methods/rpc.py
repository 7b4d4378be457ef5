"""``rpc_``: what the daemon offers, for humans and scripts discovering it."""

from __future__ import annotations

from typing import Any

from nua.rpc.errors import NotFoundError, shown
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public


class RpcMethods(MethodGroup):
    """Introspection of the method registry."""

    prefix = "rpc_"

    @public(system=True, role="reader")
    def methods(self) -> list[str]:
        """The names of every method, sorted."""
        return self.services.registry.names()

    @public(system=True, role="reader")
    def describe(self, name: str) -> dict[str, Any]:
        """The signature, parameters and doc of the method ``name``."""
        method = self.services.registry.get(name)
        if method is None:
            raise NotFoundError(f"no method {shown(name)!r}", {"entity": "method", "name": shown(name)})
        return method.describe()
