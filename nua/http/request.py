"""One HTTP request as the routes see it: method, path, query, headers (lowercase names), cookies, body."""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

# Headers a request may repeat: any other repeated (two Hosts, two Authorizations) is refused (400).
REPEATABLE = frozenset({b"cookie", b"accept", b"accept-encoding", b"accept-language", b"cache-control", b"via"})


class UnreadableRequestError(ValueError):
    """A request no route can read (a repeated header, a target that is not a path): 400."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    cookies: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def made(method: bytes, target: bytes, raw_headers: list[tuple[bytes, bytes]], body: bytes) -> Request:
    """A :class:`Request` from h11's parts; :class:`UnreadableRequestError` when it cannot be one."""
    headers: dict[str, str] = {}
    for name, value in raw_headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key in headers:
            if name.lower() not in REPEATABLE:
                msg = f"the {key} header is repeated"
                raise UnreadableRequestError(msg)
            separator = "; " if key == "cookie" else ", "
            text = headers[key] + separator + text
        headers[key] = text
    try:
        parts = urlsplit(target.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        msg = "the request target is not an ASCII path"
        raise UnreadableRequestError(msg) from None
    if not parts.path.startswith("/") or parts.scheme or parts.netloc:
        msg = "the request target must be a path (/rpc)"
        raise UnreadableRequestError(msg)
    return Request(
        method.decode("ascii"),
        parts.path,
        parse_qs(parts.query, max_num_fields=16),
        headers,
        body,
        _cookies(headers.get("cookie", "")),
    )


def _cookies(text: str) -> dict[str, str]:
    if not text:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(text)
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


__all__ = ["Request", "UnreadableRequestError", "made"]
