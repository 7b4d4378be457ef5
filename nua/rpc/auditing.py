"""The audit context of one RPC call: who is calling, and which call, while its method runs.

The dispatcher enters :func:`auditing` around a call's method; while the entry is
current, :meth:`nua.rpc.services.Services.ask` sends every command that changes
the database as :class:`~nua.model.commands.Audited`, so the DB writer commits
the call's record with its change (one record per change; reads are not
recorded). The entry lives in a :class:`contextvars.ContextVar`: it is per thread
and does not flow into a thread pool by itself, so an offloaded method is
submitted as :func:`bound` (its entry entered inside the pool's thread).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from nua.model.audit import REDACTED, AuditEntry
from nua.model.commands import COMMAND_TYPES, READ_COMMANDS, Audited, PruneAudit, RecordDenied
from nua.rpc.registry import Method

R = TypeVar("R")
# Commands that change nothing the call asked for: never wrapped.
_NOT_AUDITED: tuple[type[Any], ...] = (*READ_COMMANDS, Audited, RecordDenied, PruneAudit)

# The commands that are wrapped, by type: a set lookup instead of isinstance over every command type.
_AUDITED_TYPES = frozenset(t for t in COMMAND_TYPES if not issubclass(t, _NOT_AUDITED))

_CURRENT: ContextVar[AuditEntry | None] = ContextVar("nua_audit_entry", default=None)


def call_entry(who: str, role: str, method: Method, args: Any = (), kwargs: Any = None) -> AuditEntry:
    """The audit entry of a call of ``method`` with the request's ``args`` and ``kwargs``.

    Positional params are named after the method's parameters, so that
    ``user_update(1, "password", "...")`` is redacted as a keyword call would be;
    params its signature cannot bind (a call the registry refuses) are kept under
    ``args``. A method whose group says how its params are shown (``audited_params``:
    a cron job's nested call params) has them shown so, then redacted by name.
    """
    positional = args or ()
    names = method.positional_names
    if not kwargs and method.audited is None and names is not None and len(positional) == len(names):
        return AuditEntry.of_named(who, role, method.name, names, positional)  # the usual call
    keywords = dict(kwargs) if kwargs else {}
    if (
        names is not None
        and len(positional) <= len(names)
        and not (keywords and keywords.keys() & names[: len(positional)])
    ):
        params = dict(zip(names, positional, strict=False))  # the usual call: no binding needed
        if keywords:
            params |= keywords
    else:
        try:
            params = dict(method.signature.bind_partial(*positional, **keywords).arguments)
        except TypeError:
            # Params the method does not take (a refused call): nameless values could be
            # secrets that no name gives away, so none of them is kept.
            return AuditEntry.of(who, role, method.name, {"unbound_params": REDACTED})
    if method.audited is not None:
        params = method.audited(params)
    return AuditEntry.of(who, role, method.name, params)


def current() -> AuditEntry | None:
    """The entry of the call running in this thread, if any."""
    return _CURRENT.get()


@contextmanager
def auditing(audit_entry: AuditEntry) -> Iterator[AuditEntry]:
    """Make ``audit_entry`` current until the block ends (in this thread; nested blocks restore the outer one)."""
    token = _CURRENT.set(audit_entry)
    try:
        yield audit_entry
    finally:
        _CURRENT.reset(token)


def run_in(audit_entry: AuditEntry, function: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
    """``function(*args, **kwargs)`` with ``audit_entry`` current, in this thread: an audited call run inline.

    :func:`auditing` without its context manager, which cost as much again: this runs once per audited call.
    """
    token = _CURRENT.set(audit_entry)
    try:
        return function(*args, **kwargs)
    finally:
        _CURRENT.reset(token)


def bound(audit_entry: AuditEntry, function: Callable[..., R]) -> Callable[..., R]:
    """``function`` running inside :func:`auditing` ``(audit_entry)`` wherever it is called: for a pool job."""
    return functools.partial(run_in, audit_entry, function)


def audited(message: Any) -> Any:
    """``message`` as it is sent to the DB writer: a change, while an entry is current, wrapped in Audited."""
    found = _CURRENT.get()
    if found is None:
        return message
    if type(message) in _AUDITED_TYPES or (  # the usual command, found at once; a subclass the long way
        isinstance(message, COMMAND_TYPES) and not isinstance(message, _NOT_AUDITED)
    ):
        return Audited(message, found)
    return message


__all__ = ["audited", "auditing", "bound", "call_entry", "current", "run_in"]
