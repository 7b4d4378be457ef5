"""Console sessions: a cookie's random id -> the token it was opened with, its CSRF token, its end.

A session is opened by ``POST /login`` with a bearer token, and lasts ``[http]
session_s`` or until that token expires, whichever is first; every request made
with it checks the token again (:meth:`nua.rpc.token_cache.TokenCache.check_id`),
so a removed key or a replaced token ends its sessions at once. Only ids are
kept, at most :data:`MAX_SESSIONS` (the oldest go first): a flood of logins costs
bounded memory. Sessions live in the daemon's memory: a restart of the daemon
sends the console back to its login.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

# Sessions held at once; past it, the oldest is forgotten (its console logs in again).
MAX_SESSIONS = 1024
SESSION_BYTES = 32
# The longest a session id from a cookie may be (token_urlsafe(32) is 43 characters).
MAX_ID_CHARS = 64


@dataclass(frozen=True, slots=True)
class Session:
    """One console's login."""

    session_id: str
    token_id: str
    csrf: str  # sent back by the page in X-CSRF-Token on every POST
    expires_at: float  # Unix time


class Sessions:
    """The open sessions, bounded; shared by every incarnation of the HTTP server."""

    def __init__(self, capacity: int = MAX_SESSIONS) -> None:
        self._capacity = capacity
        self._open: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, token_id: str, expires_at: float) -> Session:
        """A new session for the token ``token_id``, ending at ``expires_at``."""
        session = Session(
            secrets.token_urlsafe(SESSION_BYTES), token_id, secrets.token_urlsafe(SESSION_BYTES), expires_at
        )
        with self._lock:
            self._open[session.session_id] = session
            while len(self._open) > self._capacity:
                self._open.popitem(last=False)
        return session

    def find(self, session_id: str, now: float) -> Session | None:
        """The live session of this id (a cookie's value), or ``None`` (unknown, expired: then forgotten)."""
        if not session_id or len(session_id) > MAX_ID_CHARS:
            return None
        with self._lock:
            session = self._open.get(session_id)
            if session is not None and now >= session.expires_at:
                del self._open[session_id]
                return None
        return session

    def close(self, session_id: str) -> None:
        """Forget a session (logout)."""
        with self._lock:
            self._open.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._open)


def csrf_matches(session: Session, sent: str | None) -> bool:
    """Whether ``sent`` (the X-CSRF-Token header) is the session's CSRF token, compared in constant time."""
    return sent is not None and hmac.compare_digest(session.csrf.encode("ascii"), sent.encode("ascii", "replace"))


__all__ = ["MAX_SESSIONS", "Session", "Sessions", "csrf_matches"]
