"""A plugin for bench/audit.py: ``setting_set``'s work without its audit record, the peer it is measured against."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from nua.model import checks
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import DB_WRITER


class PlainBenchMethods(MethodGroup):
    """``bench_plain_set(key, value)``: the same command as ``setting_set``, declared as changing nothing."""

    prefix = "bench_"

    @public(role="operator")
    def plain_set(self, key: str, value: Any) -> Future[Any]:
        """``setting_set`` as it was before audit: no entry built, no record, no log line."""
        command = checks.setting_set(key, value, self.services.settings.db.max_value_bytes)
        return self.services.ask(DB_WRITER, command)
