"""What RPC methods may use: the settings, the actor directory and a safe ``ask``.

Methods never hold an actor reference: they name the actor and :meth:`Services.ask`
resolves the name each time, so that a restarted actor is reached under the same
name, and an actor that is restarting yields an "unavailable, retry" error at
once instead of a call that hangs. Inside :func:`nua.rpc.auditing.auditing`, a
change asked of the DB writer carries the call's audit record with it.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pykka

from nua.actors.call import call
from nua.actors.directory import DB_READER, DB_WRITER, Directory
from nua.actors.events import EventHub
from nua.actors.health import Health
from nua.model.audit import AuditEntry
from nua.model.commands import RecordDenied
from nua.rpc import auditing, cancel
from nua.rpc.errors import UnavailableError
from nua.rpc.event_waits import EventWaits
from nua.rpc.key_cache import KeyCache
from nua.rpc.registry import Registry
from nua.rpc.token_cache import TokenCache
from nua.settings import Settings


@dataclass
class Services:
    """Shared by every method group of one gateway."""

    settings: Settings
    directory: Directory
    registry: Registry = field(default_factory=Registry)
    # What is degraded right now (the DB writer reports database outages here).
    health: Health = field(default_factory=Health)
    # The endpoint actually bound (a tcp port 0 resolved), set by the gateway.
    endpoint: str = ""
    # The registered client keys, as the gateway checks them ([zmq] auth = "curve").
    keys: KeyCache = field(default_factory=KeyCache)
    # The keys' HTTP bearer tokens, as the HTTP server checks them (one cache for both transports).
    tokens: TokenCache = field(default_factory=TokenCache)
    # The daemon's event stream (what changed, numbered): methods publish and read it.
    events: EventHub = field(default_factory=EventHub)
    # The long-poll reads of ``events`` waiting for the next event, made by the gateway.
    event_waits: EventWaits | None = None

    def ask(self, actor: str, message: Any) -> Future[Any]:
        """Call the actor registered as ``actor``; the future resolves with its reply.

        Raises :class:`UnavailableError` when no such actor is running right now, and
        :class:`~nua.rpc.errors.TimeoutError` when the caller of the offloaded call
        asking has stopped waiting (the work must not happen unseen). A command
        changing the database, asked while an audit entry is current
        (:func:`~nua.rpc.auditing.auditing`), is committed with its record.
        """
        cancel.check()
        if actor == DB_WRITER:
            message = auditing.audited(message)
        ref = self.directory.lookup(actor)
        if ref is None:
            raise UnavailableError(f"{actor} is not running (restarting?); retry", {"actor": actor})
        try:
            return call(ref, message)
        except pykka.ActorDeadError:
            raise UnavailableError(f"{actor} stopped (restarting?); retry", {"actor": actor}) from None

    def record_denied(self, entry: AuditEntry, needed: str) -> Future[Any]:
        """Record a call refused for want of the role ``needed``; the future resolves once the record is durable."""
        return self.ask(DB_WRITER, RecordDenied(entry, needed))


__all__ = ["DB_READER", "DB_WRITER", "Services"]
