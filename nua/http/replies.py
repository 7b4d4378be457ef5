"""Transport refusals: an HTTP status and ``{"error": "what to do"}``, never a JSON-RPC reply."""

from __future__ import annotations

import json

from nua.http.connection import Connection
from nua.http.guard import Refused

JSON = "application/json"
NO_STORE = ("cache-control", "no-store")


def refuse(conn: Connection, refused: Refused, *, close: bool = False) -> None:
    """Answer with a transport error: its status and ``{"error": message}`` (then close, with ``close``)."""
    headers = [("content-type", JSON), NO_STORE]
    if refused.status == 401:
        headers.append(("www-authenticate", 'Bearer realm="nua"'))
    conn.respond(refused.status, headers, error_body(refused.message), close=close)


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode("utf-8")


__all__ = ["JSON", "NO_STORE", "error_body", "refuse"]
