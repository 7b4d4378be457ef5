"""``key_``: the client keys allowed to call the daemon, and the daemon's own server key (admins only).

A change is applied to the gateway's cache of the key store once it is durable:
a removed key's connections are refused from their next call on, a new key can
connect at once.
"""

from __future__ import annotations

from typing import Any

from nua.actors.future import NotifyingFuture
from nua.model import checks
from nua.rpc import credentials
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import DB_READER, DB_WRITER, then


class KeyMethods(MethodGroup):
    """Add, list and remove client keys; rotate the server key."""

    prefix = "key_"

    @public(role="admin", changes=True)
    def add(self, name: str, public_key: str, role: str) -> NotifyingFuture:
        """Register the client public key ``public_key`` (Z85) as ``name`` with ``role`` (reader, operator, admin).

        Returns the key's ``{name, public_key, role, created_at, last_seen_at}``.
        """
        command = checks.key_add(name, public_key, role)
        cache = self.services.keys

        def added(row: dict[str, Any]) -> dict[str, Any]:
            cache.put(row)
            return row

        return then(self.services.ask(DB_WRITER, command), added)

    @public(role="admin")
    def list(self, limit: int | None = None, after: str | None = None) -> NotifyingFuture:
        """One page of keys ordered by name: ``{"items": [...], "next": name or null}``."""
        return self.services.ask(DB_READER, checks.key_list(limit, after, rpc=self.services.settings.rpc))

    @public(role="admin", changes=True)
    def remove(self, name: str) -> NotifyingFuture:
        """Remove the key ``name``; its open connections are refused from their next call. Returns 1."""
        command = checks.key_remove(name)
        cache = self.services.keys

        def removed(count: int) -> int:
            cache.drop(command.name)
            return count

        return then(self.services.ask(DB_WRITER, command), removed)

    @public(offload=True, role="admin", changes=True)
    def rotate_server(self) -> dict[str, Any]:
        """Replace the daemon's server key pair; the new one serves from the daemon's next start.

        Returns ``{"public_key": the new public key, "applies": "at the next restart"}``:
        clients must then be given the new public key (local ones read it from the
        runtime record by themselves).
        """
        pair = credentials.rotate_server(self.services.settings)
        return {"public_key": pair.public, "applies": "at the next restart"}
