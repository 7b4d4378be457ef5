"""``setting_``: key/value settings stored in the database."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from nua.model import checks
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import DB_READER, DB_WRITER


class SettingMethods(MethodGroup):
    """Get, set, delete and list settings; a value is any JSON value up to ``[db] max_value_bytes``."""

    prefix = "setting_"

    @public(role="reader")
    def get(self, key: str) -> Future[Any]:
        """The setting ``key`` as ``{key, value, updated_at}``."""
        return self.services.ask(DB_READER, checks.setting_get(key))

    @public(role="operator", changes=True)
    def set(self, key: str, value: Any) -> Future[Any]:
        """Create or replace the setting ``key``; return its dict once durable."""
        command = checks.setting_set(key, value, self.services.settings.db.max_value_bytes)
        return self.services.ask(DB_WRITER, command)

    @public(role="operator", changes=True)
    def delete(self, key: str) -> Future[Any]:
        """Delete the setting ``key``; return 1 (not found: -32001)."""
        return self.services.ask(DB_WRITER, checks.setting_delete(key))

    @public(role="reader")
    def list(self, limit: int | None = None, after: str | None = None) -> Future[Any]:
        """One page of settings ordered by key: ``{"items": [...], "next": key or null}``.

        ``limit`` settings at most (default ``[rpc] page_size``); ``after``: the ``next`` of the previous page.
        """
        return self.services.ask(DB_READER, checks.setting_list(limit, after, rpc=self.services.settings.rpc))
