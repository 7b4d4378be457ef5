"""A plugin for bench/audit.py: ``setting_set`` run as the dispatcher will run it once it audits every call."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from nua.rpc.auditing import auditing, call_entry
from nua.rpc.errors import MethodNotFoundError
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public


class AuditedBenchMethods(MethodGroup):
    """``bench_audited_set(key, value)``: ``setting_set`` inside ``auditing`` of its call's entry."""

    prefix = "bench_"

    @public(role="operator")
    def audited_set(self, key: str, value: Any) -> Future[Any]:
        """What ``setting_set`` costs with its audit record: the entry built, redacted, recorded and logged."""
        method = self.services.registry.get("setting_set")
        if method is None:
            raise MethodNotFoundError("no setting_set", {"method": "setting_set"})
        with auditing(call_entry("bench", "operator", method, [key, value])):
            result: Future[Any] = method.function(key, value)
            return result
