"""``key_``: the client keys allowed to call the daemon, their HTTP tokens, and the server key (admins only).

A change is applied to the gateway's cache of the key store once it is durable:
a removed key's connections are refused from their next call on, a new key can
connect at once; a key's new HTTP token works at once and replaces its last one.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from nua import curve_keys
from nua.model import checks
from nua.model.commands import ChangedOutside
from nua.rpc import auditing, credentials
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import DB_READER, DB_WRITER


class KeyMethods(MethodGroup):
    """Add, list and remove client keys; rotate the server key."""

    prefix = "key_"

    @public(role="admin", changes=True)
    def add(self, name: str, public_key: str, role: str) -> Future[Any]:
        """Register the client public key ``public_key`` (Z85) as ``name`` with ``role`` (reader, operator, admin).

        Returns the key's ``{name, public_key, role, created_at, last_seen_at}``.
        """
        command = checks.key_add(name, public_key, role)
        return _then(self.services.ask(DB_WRITER, command), self.services.keys.put)

    @public(role="admin")
    def list(self, limit: int | None = None, after: str | None = None) -> Future[Any]:
        """One page of keys ordered by name: ``{"items": [...], "next": name or null}``."""
        return self.services.ask(DB_READER, checks.key_list(limit, after, rpc=self.services.settings.rpc))

    @public(role="admin", changes=True)
    def remove(self, name: str) -> Future[Any]:
        """Remove the key ``name``; its open connections are refused from their next call. Returns 1."""
        command = checks.key_remove(name)
        cache, tokens = self.services.keys, self.services.tokens

        def forget(_count: int) -> None:
            cache.drop(command.name)
            tokens.drop(command.name)

        return _then(self.services.ask(DB_WRITER, command), forget)

    @public(role="admin", changes=True)
    def token(self, name: str, token_id: str, token_hash: str, ttl_s: float) -> Future[Any]:
        """Give the key ``name`` an HTTP bearer token for ``ttl_s`` seconds, replacing its last one.

        The caller makes the token (``nua-orchestrator keys token NAME`` does) and
        sends only its id and the SHA-256 of its secret (hex): the secret never
        reaches the daemon. Returns ``{name, token_id, role, created_at, expires_at}``.
        """
        command = checks.key_token(name, token_id, token_hash, ttl_s)
        tokens = self.services.tokens

        def issued(row: dict[str, Any]) -> None:
            tokens.put({**row, "token_hash": token_hash})

        return _then(self.services.ask(DB_WRITER, command), issued)

    @public(offload=True, role="admin", changes=True)
    def rotate_server(self) -> dict[str, Any]:
        """Replace the daemon's server key pair; the new one serves from the daemon's next start.

        Returns ``{"public_key": the new public key, "applies": "at the next restart"}``:
        clients must then be given the new public key (local ones read it from the
        runtime record by themselves).
        """
        # The record first, durable, then the files: a writer that is away (an outage)
        # refuses the call before anything changed, so a retry rotates once.
        recorded = self.services.ask(DB_WRITER, ChangedOutside("the server key pair rotated"))
        recorded.result(timeout=self.services.settings.rpc.call_timeout_s)
        pair = credentials.rotate_server(self.services.settings, curve_keys.generate())
        entry = auditing.current()
        by = {"by": entry.who} if entry is not None else {}
        self.services.events.publish("key.changed", change="rotate_server", name="(server)", **by)
        return {"public_key": pair.public, "applies": "at the next restart"}


def _then(future: Future[Any], apply: Callable[[Any], None]) -> Future[Any]:
    """``future``, with ``apply(result)`` run once it succeeds, before the gateway can reply with it.

    Done callbacks run in the order they were added, in the resolving thread: this
    one is added before the dispatcher's, so the cache has changed when the reply leaves.
    """

    def applied(done: Future[Any]) -> None:
        if not done.cancelled() and done.exception() is None:
            apply(done.result())

    future.add_done_callback(applied)
    return future
