"""``sys_``: the daemon's own state, and fault injection for tests."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any, cast

import pykka

from nua import log
from nua.actors.directory import GATEWAY, ROOT
from nua.actors.messages import ChildInfo, Crash, WhichChildren
from nua.rpc.admission import StopHandler
from nua.rpc.errors import NotFoundError, UnavailableError
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import Services
from nua.settings import configuration

# The tree is only a part of the status: a busy root must not make it hang.
TREE_TIMEOUT_S = 2.0


class SysMethods(MethodGroup):
    """The daemon's status."""

    prefix = "sys_"

    @public(offload=True, system=True, role="reader")
    def status(self) -> dict[str, Any]:
        """Pid, uptime, state, endpoint, database URL, log file, method count and the actor tree.

        ``log_file`` is the file the daemon logs to, ``null`` when it logs to its
        console (a foreground run).

        ``state`` is ``running``, or ``degraded`` while some component cannot do all
        of its work (the database unavailable); ``degraded`` lists why:
        ``component``, ``reason`` and ``since`` (ISO 8601, UTC) of each condition.
        """
        import psutil  # noqa: PLC0415 - at the first status: an idle daemon does not hold it (2 MiB)

        started = psutil.Process().create_time()
        settings = self.services.settings
        conditions = [condition.as_dict() for condition in self.services.health.conditions()]
        return {
            "pid": os.getpid(),
            "state": "degraded" if conditions else "running",
            "degraded": conditions,
            "uptime_s": round(time.time() - started, 3),
            "endpoint": self.services.endpoint,
            "db_url": settings.db.safe_url,
            "log_file": str(log_file) if (log_file := log.current_file()) is not None else None,
            "methods": len(self.services.registry),
            "tree": self._tree(datetime.fromtimestamp(started, UTC).isoformat(timespec="milliseconds")),
        }

    @public(system=True, role="admin")
    def config(self) -> dict[str, Any]:
        """The configuration the daemon runs with, read-only: ``{config_file, items}``, each item a key and its source.

        Each item is ``{section, key, value, source}`` (source: the packaged
        defaults, the file, or the ``NUA_*`` variable; a ``[services.NAME]`` table
        is one item, ``key`` null). Live: the log level is the one in force now (a
        SIGHUP re-reads it). Never stored in the database; change it in the file or
        the variables, then SIGHUP (log level) or restart. Passwords in URLs are
        ``***``. Admin only: it names paths and hosts.
        """
        settings = self.services.settings
        items = configuration(settings)
        live = log.level()
        for item in items:
            if live is not None and (item["section"], item["key"]) == ("server", "log_level") and item["value"] != live:
                item["value"], item["source"] = live, "re-read at SIGHUP"
        return {"config_file": str(settings.config_file) if settings.config_file else None, "items": items}

    def _tree(self, started_at: str) -> dict[str, Any]:
        root = self.services.directory.lookup(ROOT)
        node: dict[str, Any] = {
            "id": ROOT,
            "state": "running",
            "restarts": 0,
            "started_at": started_at,
            "last_error": None,
            "children": [],
        }
        if root is None:
            return {**node, "state": "unknown", "last_error": "no root supervisor registered"}
        try:
            children = cast("tuple[ChildInfo, ...]", root.ask(WhichChildren(), timeout=TREE_TIMEOUT_S))
        except pykka.Timeout:
            return {**node, "state": "busy", "last_error": f"no answer within {TREE_TIMEOUT_S} s"}
        except pykka.ActorDeadError:
            return {**node, "state": "stopped"}
        return {**node, "children": [child.as_dict() for child in children]}


class FaultMethods(MethodGroup):
    """``sys_fault``: served only with ``[debug] allow_fault_injection = true``."""

    prefix = "sys_"

    @classmethod
    def enabled(cls, services: Services) -> bool:
        return services.settings.debug.allow_fault_injection

    @public(role="admin", changes=True)
    def fault(self, actor_id: str) -> str:
        """Make the actor ``actor_id`` crash from inside, so that its supervisor restarts it.

        The reply goes out first: for the gateway itself, the crash is handled by
        its actor thread while this reply is already on its way. It may still be lost
        then: the restart closes the connection, and a client that had not read the
        reply by then (a loaded machine) does not get it.
        """
        ref = self.services.directory.lookup(actor_id)
        if ref is None:
            known = self.services.directory.names()
            raise NotFoundError(f"no actor {actor_id!r} (known: {', '.join(known)})", {"actor": actor_id})
        try:
            ref.tell(Crash(f"sys_fault({actor_id!r})"))
        except pykka.ActorDeadError:
            raise UnavailableError(f"{actor_id} is already stopping", {"actor": actor_id}) from None
        return f"crash injected into {actor_id}"

    @public(role="admin", changes=True)
    def fault_authenticator(self) -> str:
        """Stop the gateway's ZAP handler, as if it had died: every new connection must then be refused."""
        ref = self.services.directory.lookup(GATEWAY)
        if ref is None:
            raise UnavailableError("the gateway is not running", {"actor": GATEWAY})
        ref.tell(StopHandler())
        return "the ZAP handler stops: new connections are refused until the gateway restarts"
