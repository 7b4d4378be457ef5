"""The gateway's copy of the key store: public key -> caller, read on every handshake and every message.

Loaded whole from the DB reader when the gateway starts, then changed by the
gateway's own key methods once their change is durable (``key_add``,
``key_remove``): the writer is the only way a key changes, and each change
passes through here. Reads happen in the I/O thread, changes in whatever thread
resolves the writer's future: each change builds new maps and swaps them in
one assignment, so a reader sees the maps before or after, never half of one.

One cache serves every incarnation of the gateway. A restarted gateway reloads it
from the database; a change committed meanwhile by a call its predecessor had
started changes the cache while the rows are read, and those rows may predate it
(a removed key would come back): :meth:`load` refuses rows read across a change
(:attr:`version`), and the gateway reads them again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from zmq.utils import z85

from nua.roles import role_named
from nua.rpc.access import Caller


class KeyCache:
    """Registered keys by public key (Z85, as a connection's User-Id carries it) and by name."""

    def __init__(self) -> None:
        self._by_key: dict[str, Caller] = {}
        self._by_name: dict[str, str] = {}
        # Counts the changes (put, drop); changes and loads are serialized, reads are not.
        self.version = 0
        self._changing = threading.Lock()

    def load(self, rows: Iterable[Mapping[str, Any]], *, read_at: int | None = None) -> bool:
        """Replace everything with ``rows`` (key dicts: name, public_key, role); ``False`` if they are stale.

        ``read_at`` is :attr:`version` when the rows were begun to be read: if a
        change came since, nothing is replaced (read them again).
        """
        by_key: dict[str, Caller] = {}
        by_name: dict[str, str] = {}
        for row in rows:
            entry = _entry(row)
            if entry is not None:
                by_key[entry[0]] = entry[1]
                by_name[entry[1].name] = entry[0]
        with self._changing:
            if read_at is not None and read_at != self.version:
                return False
            self._by_key, self._by_name = by_key, by_name
        return True

    def put(self, row: Mapping[str, Any]) -> None:
        """Add or replace one key (a key dict), as the writer has just stored it."""
        entry = _entry(row)
        if entry is None:
            return
        key, caller = entry
        with self._changing:
            by_key, by_name = dict(self._by_key), dict(self._by_name)
            old = by_name.get(caller.name)
            if old is not None:
                by_key.pop(old, None)
            by_key[key] = caller
            by_name[caller.name] = key
            self._by_key, self._by_name = by_key, by_name
            self.version += 1

    def drop(self, name: str) -> None:
        """Forget the key ``name``: its connections' next calls are refused."""
        with self._changing:
            by_key, by_name = dict(self._by_key), dict(self._by_name)
            key = by_name.pop(name, None)
            if key is not None:
                by_key.pop(key, None)
            self._by_key, self._by_name = by_key, by_name
            self.version += 1

    def name_of(self, raw_public_key: bytes) -> str | None:
        """The name of the key whose raw 32 bytes these are (a ZAP request's credentials), or ``None``."""
        caller = self._by_key.get(z85.encode(raw_public_key).decode("ascii"))
        return None if caller is None else caller.name

    def caller(self, public_key: str) -> Caller | None:
        """The caller holding ``public_key`` (Z85: a message's User-Id), or ``None`` once that key is removed."""
        return self._by_key.get(public_key)

    def caller_named(self, name: str) -> Caller | None:
        """The caller registered as ``name`` (its role as it is now), or ``None`` once that key is removed."""
        key = self._by_name.get(name)
        return None if key is None else self._by_key.get(key)

    def __len__(self) -> int:
        return len(self._by_key)


def _entry(row: Mapping[str, Any]) -> tuple[str, Caller] | None:
    role = role_named(str(row.get("role")))
    public = row.get("public_key")
    if role is None or not isinstance(public, str):
        return None  # a row no check lets in: never a caller
    return public, Caller(str(row["name"]), role)


__all__ = ["KeyCache"]
