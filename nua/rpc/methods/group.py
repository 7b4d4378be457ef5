"""``group_``: user groups and their members, kept by the DB writer."""

from __future__ import annotations

import builtins
from concurrent.futures import Future
from typing import Any

from nua.model import checks
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import DB_READER, DB_WRITER


class GroupMethods(MethodGroup):
    """Create, list and delete groups; add, remove and list their members."""

    prefix = "group_"

    @public(role="admin", changes=True)
    def add(self, name: str, source: str = "") -> Future[Any]:
        """Create the group ``name``; return its dict."""
        return self.services.ask(DB_WRITER, checks.group_add(name, source))

    @public(role="reader")
    def list(self, limit: int | None = None, after: str | None = None) -> Future[Any]:
        """One page of groups ordered by name, each with its member count: ``{"items": [...], "next": name or null}``.

        ``limit`` groups at most (default ``[rpc] page_size``); ``after``: the ``next`` of the previous page.
        """
        return self.services.ask(DB_READER, checks.group_list(limit, after, rpc=self.services.settings.rpc))

    @public(role="admin", changes=True)
    def delete(self, name: str) -> Future[Any]:
        """Delete the group ``name``; return 1 (no such group: -32001, as ``group_members`` says)."""
        return self.services.ask(DB_WRITER, checks.group_delete(name))

    @public(role="admin", changes=True)
    def add_members(self, group: str, user_ids: builtins.list[int]) -> Future[Any]:
        """Add users to ``group`` (at most ``[rpc] max_page_size`` ids a call); return how many memberships are new."""
        most = self.services.settings.rpc.max_page_size
        return self.services.ask(DB_WRITER, checks.group_add_members(group, user_ids, most))

    @public(role="admin", changes=True)
    def remove_members(self, group: str, user_ids: builtins.list[int]) -> Future[Any]:
        """Remove users from ``group`` (at most ``[rpc] max_page_size`` ids a call); return how many were removed."""
        most = self.services.settings.rpc.max_page_size
        return self.services.ask(DB_WRITER, checks.group_remove_members(group, user_ids, most))

    @public(role="reader")
    def members(self, group: str, limit: int | None = None, after: int | None = None) -> Future[Any]:
        """One page of the members of ``group`` ordered by id: ``{"items": [...], "next": id or null}``."""
        command = checks.group_members(group, limit, after, rpc=self.services.settings.rpc)
        return self.services.ask(DB_READER, command)
