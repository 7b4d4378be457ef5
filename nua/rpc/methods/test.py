"""``test_``: arithmetic to check that the daemon answers (and how errors look)."""

from __future__ import annotations

from nua.rpc.errors import DivisionByZeroError
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import Services


class TestMethods(MethodGroup):
    """Trivial methods run inline in the gateway's I/O thread; served only with ``[debug] test_methods = true``."""

    prefix = "test_"

    @classmethod
    def enabled(cls, services: Services) -> bool:
        return services.settings.debug.test_methods

    @public(role="reader")
    def add(self, a: float, b: float) -> float:
        """Return ``a + b``."""
        return a + b

    @public(role="reader")
    def divide(self, a: float, b: float) -> float:
        """Return ``a / b``; a zero ``b`` is a ``division_by_zero`` error (-32006)."""
        if b == 0:
            raise DivisionByZeroError("division by zero", {"param": "b", "a": a, "b": b})
        return a / b
