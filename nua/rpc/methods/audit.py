"""``audit_``: the audit trail, read from the database by the DB reader."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from nua.model import checks
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import DB_READER


class AuditMethods(MethodGroup):
    """List the records of changes made through RPC and of denied calls."""

    prefix = "audit_"

    @public(role="admin")
    def list(
        self,
        since: str | None = None,
        who: str | None = None,
        method: str | None = None,
        limit: int | None = None,
        after: int | None = None,
    ) -> Future[Any]:
        """One page of audit records, newest first: ``{"items": [...], "next": id or null}``.

        Each record: ``id``, ``at`` (ISO 8601, UTC), ``who`` (key name), ``role``,
        ``method``, ``params`` (secrets shown as ``***``), ``outcome`` (``ok`` or
        ``denied``) and ``detail`` (for a denied call, the role it needs).
        ``since``: an ISO 8601 timestamp (UTC when it has no offset); ``who`` and
        ``method`` select exact names. ``limit`` records at most (default ``[rpc]
        page_size``); ``after``: the ``next`` of the previous page.
        """
        command = checks.audit_list(since, who, method, limit, after, rpc=self.services.settings.rpc)
        return self.services.ask(DB_READER, command)
