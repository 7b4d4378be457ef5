"""How a cron job's declaration and a call's result are shown: with their secrets masked.

A job's config may hold secrets: a command's ``env`` values (``DB_PASSWORD``), a
call's ``params`` (``user_update(1, "password", "...")``). Readers see every job
(``cron_list``, ``cron_get``) and the audit trail records each ``cron_add``, so
both show the config as :func:`shown_config` makes it: each ``env`` value
``***``, and the call's params redacted exactly as the audit trail redacts that
method's own calls (:func:`nua.rpc.auditing.call_entry`: positional params named
after its signature, then redacted by name). What a job's call answered is kept in
its run (``cron_history``, readable by readers): :func:`shown_result` keeps only
its kind and size when the method needs more than the reader role.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nua.model.audit import REDACTED
from nua.roles import Role
from nua.rpc import auditing
from nua.rpc.registry import Method, Registry
from nua.settings import masked_env

# Each JSON type's name, by the Python types decoding gives (bool before int: a bool is an int).
_JSON_TYPES: tuple[tuple[type[Any] | tuple[type[Any], ...], str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),
    ((int, float), "number"),
    (str, "string"),
    (Mapping, "object"),
    ((list, tuple), "array"),
)


def shown_config(config: Mapping[str, Any], registry: Registry) -> dict[str, Any]:
    """``config`` (a job's table) with its ``env`` values masked and its call's params redacted."""
    shown = masked_env(dict(config))
    if "params" in shown:
        called = shown.get("call")
        method = registry.get(called) if isinstance(called, str) else None
        shown["params"] = REDACTED if method is None else shown_params(method, shown["params"])
    return shown


def shown_params(method: Method, params: Any) -> Any:
    """A call's params (a list or an object) as an audit record of a call of ``method`` shows them."""
    if isinstance(params, Mapping):
        return auditing.call_entry("", "", method, (), params).params
    if isinstance(params, list | tuple):
        return auditing.call_entry("", "", method, params).params
    return REDACTED


def shown_result(method: Method, result: Any) -> Any:
    """What a job's run keeps of ``result``: all of it for a reader's method, else ``ok``, its type and size."""
    if method.role is not None and method.role <= Role.READER:
        return result
    try:
        size = len(json.dumps(result, default=str))
    except (TypeError, ValueError):
        size = None
    return {"ok": True, "type": _json_type(result), "size": size}


def _json_type(value: Any) -> str:
    return next((name for kinds, name in _JSON_TYPES if isinstance(value, kinds)), type(value).__name__)


__all__ = ["shown_config", "shown_params", "shown_result"]
