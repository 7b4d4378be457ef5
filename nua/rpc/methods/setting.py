"""``setting_``: key/value settings stored in the database."""

from __future__ import annotations

from typing import Any

from nua.actors._future import NotifyingFuture
from nua.model import commands, prepare
from nua.rpc.registry import MethodGroup, public
from nua.rpc.services import DB_WRITER


class SettingMethods(MethodGroup):
    """Get, set and list settings; a value is any JSON value."""

    prefix = "setting_"

    @public
    def get(self, key: str) -> NotifyingFuture:
        """The setting ``key`` as ``{key, value, updated_at}``."""
        return self.services.ask(DB_WRITER, prepare.setting_get(key))

    @public
    def set(self, key: str, value: Any) -> NotifyingFuture:
        """Create or replace the setting ``key``; return its dict once durable."""
        return self.services.ask(DB_WRITER, prepare.setting_set(key, value))

    @public
    def list(self) -> NotifyingFuture:
        """Every setting ordered by key."""
        return self.services.ask(DB_WRITER, commands.ListSettings())
