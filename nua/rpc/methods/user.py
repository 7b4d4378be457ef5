"""``user_``: the platform's users, kept by the DB writer.

Arguments are checked and passwords hashed here, in the caller's thread (the
gateway's pool for the methods that hash), so that the writer's serial section
is database work only. Every change returns the writer's future: the reply goes
out once the change is durable. Reads go to the DB reader, which sees every
acknowledged change and never waits behind the writer.
"""

from __future__ import annotations

import builtins
from concurrent.futures import Future
from typing import Any

from nua.model import checks, commands
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import DB_READER, DB_WRITER


class UserMethods(MethodGroup):
    """Add, list, count, update and delete users."""

    prefix = "user_"

    @public(offload=True, role="admin", changes=True)
    def add(self, user_data: dict[str, Any]) -> Future[Any]:
        """Add a user from ``{username, email, password[, id, role, display_name]}``; return its dict.

        An ``id`` that is missing, negative or taken means the next free id; a
        ``salt`` key is accepted and ignored (each hash makes its own).
        """
        command = checks.user_add(user_data, self.services.settings.security)
        return self.services.ask(DB_WRITER, command)

    @public(role="reader")
    def count(self) -> Future[Any]:
        """The number of users."""
        return self.services.ask(DB_READER, commands.CountUsers())

    @public(role="reader")
    def get(self, id: int) -> Future[Any]:  # noqa: A002 - the original API's parameter name
        """The user with this id."""
        return self.services.ask(DB_READER, checks.user_get(id))

    @public(role="reader")
    def list(
        self, request: dict[str, Any] | None = None, limit: int | None = None, after: int | None = None
    ) -> Future[Any]:
        """One page of users ordered by id: ``{"items": [...], "next": id or null}``.

        ``request`` filters by ``ids``, ``names``, ``mails`` (a user matching any
        is listed; none, or ``all``, lists every user). ``limit`` users at most
        (default ``[rpc] page_size``); ``after``: the ``next`` of the previous page.
        """
        command = checks.user_list(request, limit, after, rpc=self.services.settings.rpc)
        return self.services.ask(DB_READER, command)

    @public(offload=True, role="admin", changes=True)
    def update(self, id: int, key: str, value: Any) -> Future[Any]:  # noqa: A002 - the original API's name
        """Set ``key`` (username, email, role, display_name or password) of user ``id``; return its dict."""
        command = checks.user_update(id, key, value, self.services.settings.security)
        return self.services.ask(DB_WRITER, command)

    @public(role="admin", changes=True)
    def delete(self, ids: builtins.list[int]) -> Future[Any]:
        """Delete the users with these ids (at most ``[rpc] max_page_size`` a call); return how many were deleted."""
        return self.services.ask(DB_WRITER, checks.user_delete(ids, self.services.settings.rpc.max_page_size))

    @public(role="admin", changes=True)
    def delete_all(self) -> Future[Any]:
        """Delete every user; return how many were deleted."""
        return self.services.ask(DB_WRITER, commands.DeleteAllUsers())
