"""The HTTP server's copy of the key store's bearer tokens: token id -> whose, its hash, its expiry.

Loaded whole from the DB reader when the HTTP server starts, then changed by the
key methods once their change is durable (``key_token`` puts, ``key_remove``
drops): as :class:`~nua.rpc.key_cache.KeyCache`, each change builds a new map and
swaps it in one assignment, and one cache serves every incarnation of the HTTP
server and the key methods of both transports. A load refuses rows read across a
change (:attr:`version`): they may predate it.

:meth:`check` proves a token: its id finds the entry, the secret's SHA-256 is
compared in constant time, and its expiry is read on the clock given (tests
inject one). :meth:`subscribe` tells a listener of each change (the HTTP server
then checks its open event streams again: a removed key's stream ends at once).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nua import bearer_tokens
from nua.listeners import Listeners
from nua.roles import role_named
from nua.rpc.access import Caller


@dataclass(frozen=True, slots=True)
class _Entry:
    caller: Caller
    token_hash: str
    expires_at: float  # Unix time


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a token proves nothing: ``unknown`` (never issued, replaced, its key removed) or ``expired``."""

    reason: str


UNKNOWN = Refusal("unknown")
EXPIRED = Refusal("expired")


@dataclass(frozen=True, slots=True)
class Proved:
    """A token that proved its key: the caller it calls as, its id and when it expires (Unix time)."""

    caller: Caller
    token_id: str
    expires_at: float


class TokenCache:
    """Bearer tokens by id; at most one per key name."""

    def __init__(self) -> None:
        self._by_id: dict[str, _Entry] = {}
        self._by_name: dict[str, str] = {}
        self.version = 0
        self._changing = threading.Lock()
        self._listeners: Listeners[Callable[[], None]] = Listeners()

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each change, in the changing thread (it must only hand it on); the unsubscribe."""
        return self._listeners.add(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def load(self, rows: Iterable[Mapping[str, Any]], *, read_at: int | None = None) -> bool:
        """Replace everything with ``rows`` (ListTokens' items); ``False`` if a change came since ``read_at``."""
        by_id: dict[str, _Entry] = {}
        by_name: dict[str, str] = {}
        for row in rows:
            made = _entry(row)
            if made is not None:
                by_id[row["token_id"]] = made
                by_name[made.caller.name] = row["token_id"]
        with self._changing:
            if read_at is not None and read_at != self.version:
                return False
            self._by_id, self._by_name = by_id, by_name
        self._changed()
        return True

    def put(self, row: Mapping[str, Any]) -> None:
        """Add the token just issued (name, role, token_id, token_hash, expires_at), replacing its key's last."""
        made = _entry(row)
        if made is None:
            return
        with self._changing:
            by_id, by_name = dict(self._by_id), dict(self._by_name)
            old = by_name.get(made.caller.name)
            if old is not None:
                by_id.pop(old, None)
            by_id[row["token_id"]] = made
            by_name[made.caller.name] = row["token_id"]
            self._by_id, self._by_name = by_id, by_name
            self.version += 1
        self._changed()

    def drop(self, name: str) -> None:
        """Forget the token of the key ``name`` (the key was removed)."""
        with self._changing:
            by_id, by_name = dict(self._by_id), dict(self._by_name)
            token_id = by_name.pop(name, None)
            if token_id is not None:
                by_id.pop(token_id, None)
            self._by_id, self._by_name = by_id, by_name
            self.version += 1
        self._changed()

    def check(self, token: str, now: float) -> Proved | Refusal:
        """Who ``token`` (a bearer token's text) proves to be at ``now`` (Unix time), or why it proves nothing."""
        parts = bearer_tokens.parse(token)
        if parts is None:
            return UNKNOWN
        return self.check_id(parts[0], now, secret=parts[1])

    def check_id(self, token_id: str, now: float, *, secret: str | None = None) -> Proved | Refusal:
        """As :meth:`check` by id; without ``secret``, for a session opened with that token (proved then)."""
        entry = self._by_id.get(token_id)
        if entry is None or (secret is not None and not bearer_tokens.proves(secret, entry.token_hash)):
            return UNKNOWN
        if now >= entry.expires_at:
            return EXPIRED
        return Proved(entry.caller, token_id, entry.expires_at)

    def __len__(self) -> int:
        return len(self._by_id)


def _entry(row: Mapping[str, Any]) -> _Entry | None:
    role = role_named(str(row.get("role")))
    expires = row.get("expires_at")
    if isinstance(expires, str):
        expires = datetime.fromisoformat(expires)
    if role is None or not isinstance(expires, datetime) or not bearer_tokens.is_hash(row.get("token_hash")):
        return None  # a row no check lets in: never a caller
    return _Entry(Caller(str(row["name"]), role), str(row["token_hash"]), expires.timestamp())


__all__ = ["EXPIRED", "UNKNOWN", "Proved", "Refusal", "TokenCache"]
