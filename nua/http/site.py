"""The HTTP server's routes: what each path answers, once :mod:`nua.http.guard`'s rules are met.

==========  ===========  ==========================================================
``GET``     ``/``         the console (``index.html``; ``/console.js``, ``/console.css``)
``POST``    ``/login``    ``{"token": TOKEN}`` opens a session: its cookie, and the CSRF token
``GET``     ``/session``  the session's key, role, CSRF token and end (the console after a reload)
``POST``    ``/logout``   ends the session (204)
``POST``    ``/rpc``      JSON-RPC 2.0: a request or a batch; 200 with the reply, 204 when none
``GET``     ``/events``   the event stream (Server-Sent Events, ``Last-Event-ID`` resumes)
==========  ===========  ==========================================================

``/rpc`` runs the calls through the same :class:`~nua.rpc.dispatch.Dispatcher` as
the ZeroMQ gateway (built by :func:`nua.rpc.serving.dispatcher`): same methods,
roles, limits, audit records; JSON-RPC errors stay inside a 200 reply.
Transport refusals have their HTTP status and a JSON body ``{"error": "..."}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from nua.http import guard
from nua.http.connection import Connection, Malformed
from nua.http.event_stream import EventStreams
from nua.http.replies import JSON, NO_STORE, error_body, refuse
from nua.http.request import Request
from nua.http.sessions import Sessions
from nua.rpc.dispatch import Dispatcher
from nua.rpc.token_cache import Refusal, TokenCache
from nua.settings import HttpSettings

# The console's files, shipped in the package (package_data): no build step.
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/console.css": ("console.css", "text/css; charset=utf-8"),
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
ROUTES = {
    "/login": "POST",
    "/session": "GET",
    "/logout": "POST",
    "/rpc": "POST",
    "/events": "GET",
    **dict.fromkeys(STATIC, "GET"),
}


def load_console() -> dict[str, tuple[bytes, str]]:
    """The console's files by path: their bytes and content type."""
    folder = resources.files("nua.http") / "console"
    return {path: ((folder / name).read_bytes(), kind) for path, (name, kind) in STATIC.items()}


@dataclass
class Site:
    """Answers each complete request of a connection (in the I/O thread)."""

    settings: HttpSettings
    dispatcher: Dispatcher
    tokens: TokenCache
    sessions: Sessions
    streams: EventStreams
    console: dict[str, tuple[bytes, str]]
    clock: Callable[[], float]
    # Called when a response is queued after the request's turn (an RPC reply): flush, read on.
    answered: Callable[[Connection], None]

    def __post_init__(self) -> None:
        self.hosts = guard.allowed_hosts(self.settings)
        self.secure = self.settings.tls or self.settings.behind_proxy

    def handle(self, conn: Connection, request: Request | Malformed) -> None:
        if isinstance(request, Malformed):
            refuse(conn, guard.Refused(request.status, request.message))
            return
        refused = guard.check_origin(request, self.hosts)
        if refused is not None:
            refuse(conn, refused)
            return
        method = ROUTES.get(request.path)
        if method is None:
            refuse(conn, guard.Refused(404, f"no such path {request.path[:80]!r}: see / for the console, /rpc for RPC"))
            return
        if request.method != method:
            conn.respond(405, [("allow", method), ("content-type", JSON)], error_body(f"use {method}"))
            return
        if request.path in STATIC:
            body, kind = self.console[request.path]
            headers = [("content-type", kind), ("cache-control", "no-cache")]
            conn.respond(200, [*headers, ("content-security-policy", CONTENT_SECURITY_POLICY)], body)
            return
        getattr(self, "_" + request.path[1:])(conn, request)

    # -- sessions ----------------------------------------------------------------------------

    def _login(self, conn: Connection, request: Request) -> None:
        refused = guard.check_json(request)
        if refused is not None:
            refuse(conn, refused)
            return
        token = _token_of(request.body)
        if token is None:
            refuse(conn, guard.Refused(400, 'send {"token": "nua_..."}'))
            return
        now = self.clock()
        proved = self.tokens.check(token, now)
        if isinstance(proved, Refusal):
            refuse(conn, guard.Refused(401, f"the token is {proved.reason}: ask an admin for a new one"))
            return
        session = self.sessions.open(proved.token_id, min(proved.expires_at, now + self.settings.session_s))
        cookie = f"{guard.SESSION_COOKIE}={session.session_id}; Path=/; HttpOnly; SameSite=Strict"
        cookie += f"; Max-Age={max(1, int(session.expires_at - now))}" + ("; Secure" if self.secure else "")
        body = _who(proved.caller.name, proved.caller.role.label, session.csrf, session.expires_at)
        conn.respond(200, [("content-type", JSON), NO_STORE, ("set-cookie", cookie)], body)

    def _session(self, conn: Connection, request: Request) -> None:
        admitted = guard.admit(_cookie_only(request), self.tokens, self.sessions, self.clock())
        if isinstance(admitted, guard.Refused):
            refuse(conn, admitted)
            return
        assert admitted.session is not None  # noqa: S101 - a cookie admitted it
        caller = admitted.caller
        conn.respond(
            200,
            [("content-type", JSON), NO_STORE],
            _who(caller.name, caller.role.label, admitted.session.csrf, admitted.expires_at),
        )

    def _logout(self, conn: Connection, request: Request) -> None:
        admitted = guard.admit(_cookie_only(request), self.tokens, self.sessions, self.clock())
        if isinstance(admitted, guard.Refused):
            refuse(conn, admitted)
            return
        assert admitted.session is not None  # noqa: S101 - a cookie admitted it
        self.sessions.close(admitted.session.session_id)
        gone = f"{guard.SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        conn.respond(204, [NO_STORE, ("set-cookie", gone)])

    # -- RPC and events ----------------------------------------------------------------------

    def _rpc(self, conn: Connection, request: Request) -> None:
        admitted = guard.admit(request, self.tokens, self.sessions, self.clock())
        if isinstance(admitted, guard.Refused):
            refuse(conn, admitted)
            return
        refused = guard.check_json(request)
        if refused is not None:
            refuse(conn, refused)
            return

        def send(reply: bytes) -> None:
            conn.respond(200, [("content-type", JSON), NO_STORE], reply)
            self.answered(conn)

        def unanswered() -> None:
            conn.respond(204, [NO_STORE])
            self.answered(conn)

        client = b"http:" + admitted.caller.name.encode("utf-8")
        self.dispatcher.handle(request.body, send, client, admitted.caller, unanswered)

    def _events(self, conn: Connection, request: Request) -> None:
        admitted = guard.admit(request, self.tokens, self.sessions, self.clock())
        if isinstance(admitted, guard.Refused):
            refuse(conn, admitted)
            return
        self.streams.open(conn, request, admitted)


def _who(name: str, role: str, csrf: str, expires_at: float) -> bytes:
    return json.dumps({"name": name, "role": role, "csrf": csrf, "expires_at": expires_at}).encode("utf-8")


def _token_of(body: bytes) -> str | None:
    try:
        value: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None
    token = value.get("token") if isinstance(value, dict) else None
    return token if isinstance(token, str) else None


def _cookie_only(request: Request) -> Request:
    """``request`` without its Authorization header: the session routes are the cookie's."""
    headers = {name: value for name, value in request.headers.items() if name != "authorization"}
    return Request(request.method, request.path, request.query, headers, request.body, request.cookies)


__all__ = ["ROUTES", "Site", "load_console"]
