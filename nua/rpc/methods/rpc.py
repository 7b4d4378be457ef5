"""``rpc_``: what the daemon offers, for humans and scripts discovering it."""

from __future__ import annotations

from typing import Any

from nua.rpc.errors import InvalidParamsError, NotFoundError, shown
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public


class RpcMethods(MethodGroup):
    """Introspection of the method registry."""

    prefix = "rpc_"

    @public(system=True, role="reader")
    def methods(self, detailed: bool = False) -> list[Any]:
        """The names of every method, sorted; ``detailed``: each as ``{name, signature, summary, role}``.

        ``summary`` is the first line of its doc (``rpc_describe`` has the rest).
        """
        if not isinstance(detailed, bool):
            raise InvalidParamsError("detailed must be true or false", {"param": "detailed"})
        names = self.services.registry.names()
        if not detailed:
            return names
        described = []
        for name in names:
            method = self.services.registry.get(name)
            if method is None:  # gone since names() (a registry does not shrink; never in practice)
                continue
            info = method.describe()
            summary = (info["doc"] or "").strip().split("\n", 1)[0]
            described.append({"name": name, "signature": info["signature"], "summary": summary, "role": info["role"]})
        return described

    @public(system=True, role="reader")
    def describe(self, name: str) -> dict[str, Any]:
        """The signature, parameters and doc of the method ``name``."""
        method = self.services.registry.get(name)
        if method is None:
            raise NotFoundError(f"no method {shown(name)!r}", {"entity": "method", "name": shown(name)})
        return method.describe()
