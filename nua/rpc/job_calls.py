"""How a cron job's ``call`` runs: as a call of the daemon's own method by the key that added the job.

The cron actor (:mod:`nua.actors.cron`) knows nothing of RPC; the daemon gives it a
:class:`JobCalls` (its :class:`~nua.actors.cron.JobActions`). A call is checked
as the gateway checks a client's (:func:`nua.rpc.access.denial` against the role
the job's key has *now*, read in the gateway's live key cache at each run: a key
removed since fails the run, a key demoted runs with its new role; a job of the
settings file keeps its configured role, and so does every job when there is no
key store, ``[zmq] auth = "none"``), then the method's params, and runs as it would: a method that
changes state runs inside its audit entry (who: the job's key, its role), so the
change commits with its record; a call the role does not allow is refused and
recorded ``denied``. It runs in a small pool of its own, never in the actor's
thread; a method answering with a future (an actor's reply) is waited for there.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from nua.job_settings import CallAction
from nua.model.cron_operations import FILE_OWNER
from nua.model.errors import ModelError
from nua.roles import Role, role_named
from nua.rpc import auditing
from nua.rpc.access import Caller, denial
from nua.rpc.errors import ForbiddenError, InvalidParamsError, RpcError
from nua.rpc.job_shown import shown_result
from nua.rpc.key_cache import KeyCache
from nua.rpc.registry import Method, Registry
from nua.rpc.services import Services

# How long one job's call may wait for its method's answer.
CALL_TIMEOUT_S = 300.0
WORKERS = 4
# How long a refused call waits for its "denied" record.
RECORD_WAIT_S = 10.0
# The role recorded for a call refused because its key is gone.
REMOVED = "(key removed)"


class JobCalls:
    """:class:`~nua.actors.cron.JobActions` on a registry filled as the gateway's is."""

    def __init__(
        self,
        registry: Registry,
        services: Services,
        *,
        keys: Callable[[], KeyCache | None] | None = None,
        workers: int = WORKERS,
    ) -> None:
        """``keys`` gives the gateway's live key cache (``None`` until it has loaded one); no ``keys``: no key
        store (``[zmq] auth = "none"``), each job runs with the role stored with it."""
        self.registry = registry
        self.services = services
        self._keys = keys
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="nua-cron-call")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _method(self, action: CallAction, role: str) -> tuple[Method, Role]:
        method = self.registry.get(action.method)
        if method is None:
            raise InvalidParamsError(f"call: no method {action.method!r} (see `nua methods`)", {"param": "call"})
        caller_role = role_named(role)
        if caller_role is None:
            raise InvalidParamsError(f"no role {role!r}", {"param": "role"})
        return method, caller_role

    def check(self, action: CallAction, role: str) -> str | None:
        try:
            method, caller_role = self._method(action, role)
        except RpcError as exc:
            return exc.message
        refused = denial(method, Caller("", caller_role))
        if refused is not None:
            return f"call: {action.method} needs the {method.role.label if method.role else '(none)'} role"
        args, kwargs = _split(action.params)
        try:
            method.check(args, kwargs)
        except InvalidParamsError as exc:
            return f"params: {exc.message}"
        return None

    def call(self, action: CallAction, who: str, role: str) -> Future[Any]:
        """Make the call; the future resolves with its result as the run keeps it (see :func:`shown_result`)."""
        return self._pool.submit(self._run, action, who, role)

    def _current_role(self, who: str, role: str) -> tuple[str | None, str]:
        """The role the key ``who`` has now, or ``None`` and why it has none (removed, or no key store loaded yet).

        ``role`` (the stored one) for a file job, or without a key store.
        """
        cache = None if self._keys is None else self._keys()
        if cache is not None:
            self.services.keys = cache  # the live cache: key_add/key_remove by a job change what the gateway sees
        if self._keys is None or who == FILE_OWNER:
            return role, ""
        if cache is None:
            return None, "the key store is not loaded yet (the gateway is starting): no key is known to be valid"
        caller = cache.caller_named(who)
        if caller is None:
            return None, f"the key {who!r} that added this job is no longer registered: the job cannot run"
        return caller.role.label, ""

    def _run(self, action: CallAction, who: str, role: str) -> Any:
        current, why = self._current_role(who, role)
        method, caller_role = self._method(action, role if current is None else current)
        args, kwargs = _split(action.params)
        refused: RpcError | None
        if current is None:
            entry = auditing.call_entry(who, REMOVED, method, args, kwargs)
            refused = ForbiddenError(why, {"method": method.name, "key": who})
        else:
            entry = auditing.call_entry(who, caller_role.label, method, args, kwargs)
            refused = denial(method, Caller(who, caller_role))
        if refused is not None:
            if method.role is not None:
                # Durable before the run is recorded failed; a writer that is away loses the record, not the refusal.
                with contextlib.suppress(RpcError, ModelError, TimeoutError):
                    self.services.record_denied(entry, method.role.label).result(RECORD_WAIT_S)
            raise refused
        method.check(args, kwargs)
        function = auditing.bound(entry, method.function) if method.changes else method.function
        result = function(*args, **kwargs)
        while isinstance(result, Future):
            result = result.result(CALL_TIMEOUT_S)
        return shown_result(method, result)  # the run's record is readable by readers


def _split(params: Any) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(params, dict):
        return [], dict(params)
    return list(params), {}


__all__ = ["JobCalls"]
