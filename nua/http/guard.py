"""The rules every HTTP request meets before a route runs, and who it comes from.

In order: the ``Host`` header names this server (one of ``[http] allowed_hosts``,
the address, and localhost's names on loopback; DNS rebinding gives a page of
another site the server's address under that site's name, and this refuses it);
an ``Origin``, when the browser sends one, is this server's own (no CORS:
another site's page is never answered, and no ``Access-Control-*`` header is
ever sent); a body is JSON (``Content-Type: application/json``, which no HTML
form can send); and the caller proves a key: an ``Authorization: Bearer`` token,
or the console's session cookie, which on a ``POST`` must come with the
session's CSRF token in ``X-CSRF-Token``.

Each refusal is a :class:`Refused` with its HTTP status (the README lists them:
400, 401, 403, 413, 415, 503) and one sentence saying what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from nua.http.request import Request
from nua.http.sessions import Session, Sessions, csrf_matches
from nua.rpc.access import Caller
from nua.rpc.token_cache import Proved, Refusal, TokenCache
from nua.setting_rules import is_loopback
from nua.settings import HttpSettings

SESSION_COOKIE = "nua_session"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class Refused:
    """A request refused before any route ran: its status and why."""

    status: int
    message: str


@dataclass(frozen=True, slots=True)
class Admitted:
    """Who a request comes from: the caller, its token's id, and the session when it came with the console's cookie."""

    caller: Caller
    token_id: str
    expires_at: float
    session: Session | None = None


def allowed_hosts(settings: HttpSettings) -> frozenset[str]:
    """The host names a ``Host`` header may carry (lowercase, without port or brackets)."""
    names = {settings.address.strip("[]").lower(), *(name.strip("[]").lower() for name in settings.allowed_hosts)}
    if is_loopback(settings.address):
        names.update(LOOPBACK_NAMES)
    return frozenset(names)


def host_name(host: str) -> str:
    """``Host``'s name without its port: ``[::1]:8080`` -> ``::1``, ``nua.example.org:443`` -> ``nua.example.org``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_origin(request: Request, hosts: frozenset[str]) -> Refused | None:
    """``Host`` names this server, and ``Origin`` (when sent) is this same server."""
    host = request.header("host")
    if not host:
        return Refused(400, "the request has no Host header")
    if host_name(host) not in hosts:
        return Refused(403, "the Host header names another server; add it to [http] allowed_hosts if it is this one")
    origin = request.header("origin")
    if origin is not None:  # "null" too: a sandboxed frame or a file, never this server's own page
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            netloc = ""
        if netloc != host.strip().lower():
            return Refused(403, "cross-origin requests are refused: this server sends no CORS headers")
    return None


def check_json(request: Request) -> Refused | None:
    """The body is declared JSON: ``Content-Type: application/json`` (a charset parameter, if any, utf-8)."""
    declared = request.header("content-type") or ""
    kind, _, params = declared.partition(";")
    charset = params.strip().lower()
    if kind.strip().lower() != "application/json" or (charset and charset not in {"charset=utf-8", 'charset="utf-8"'}):
        return Refused(415, "send the body as Content-Type: application/json")
    return None


def admit(request: Request, tokens: TokenCache, sessions: Sessions, now: float) -> Admitted | Refused:  # noqa: PLR0911
    """Who sent ``request``: a bearer token, else the session cookie (with its CSRF token on a POST)."""
    authorization = request.header("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Refused(401, "send Authorization: Bearer TOKEN (nua-orchestrator keys token NAME makes one)")
        return _proved(tokens.check(token.strip(), now))
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id is None:
        return Refused(401, "no token: send Authorization: Bearer TOKEN, or log in to the console")
    session = sessions.find(session_id, now)
    if session is None:
        return Refused(401, "the session has ended: log in again")
    proved = tokens.check_id(session.token_id, now)
    if isinstance(proved, Refusal):
        sessions.close(session_id)
        return Refused(401, f"the session's token is {proved.reason}: log in again")
    if request.method == "POST" and not csrf_matches(session, request.header(CSRF_HEADER)):
        return Refused(403, "the X-CSRF-Token header is missing or wrong: reload the console")
    return Admitted(proved.caller, proved.token_id, min(proved.expires_at, session.expires_at), session)


def still_admitted(admitted: Admitted, tokens: TokenCache, sessions: Sessions, now: float) -> bool:
    """Whether what admitted a request still holds at ``now``: its token (not removed, replaced, expired), its session.

    For what outlives its request (an event stream): a request checks its token
    when it comes, a stream checks it again whenever it may send.
    """
    if isinstance(tokens.check_id(admitted.token_id, now), Refusal):
        return False
    return admitted.session is None or sessions.find(admitted.session.session_id, now) is not None


def _proved(result: Proved | Refusal) -> Admitted | Refused:
    if isinstance(result, Refusal):
        return Refused(401, f"the bearer token is {result.reason}: ask an admin for a new one")
    return Admitted(result.caller, result.token_id, result.expires_at)


__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Admitted",
    "Refused",
    "admit",
    "allowed_hosts",
    "check_json",
    "check_origin",
    "host_name",
    "still_admitted",
]
