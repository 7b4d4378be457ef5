"""The console's session (issue 14 point 2): login with a token, the cookie's attributes, CSRF on POST, logout, TLS."""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from http_helpers import RPC_HEADERS, HttpTree

ADD = {"jsonrpc": "2.0", "id": 1, "method": "test_add", "params": [1, 2]}


def _login(tree: HttpTree, token: str) -> tuple[str, dict[str, object], str]:
    """Log in: the cookie header to send back, the reply, and the Set-Cookie line."""
    reply = tree.request("POST", "/login", {"token": token}, RPC_HEADERS)
    assert reply.status == 200, reply.body
    set_cookie = reply.headers["set-cookie"]
    return set_cookie.split(";", 1)[0], reply.json(), set_cookie


def test_login_sets_an_httponly_strict_cookie_and_returns_the_csrf_token(tree: HttpTree) -> None:
    cookie, who, set_cookie = _login(tree, tree.token("olga", role="operator"))
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "SameSite=Strict" in set_cookie
    assert "secure" not in attributes  # plain HTTP on loopback: a Secure cookie would never come back
    assert who["name"] == "olga"
    assert who["role"] == "operator"
    assert isinstance(who["csrf"], str)
    assert len(str(who["csrf"])) >= 32
    session = tree.request("GET", "/session", headers={"Cookie": cookie})
    assert session.json()["csrf"] == who["csrf"]


def test_a_post_with_the_cookie_needs_the_csrf_token(tree: HttpTree) -> None:
    cookie, who, _ = _login(tree, tree.token("olga", role="operator"))
    missing = tree.request("POST", "/rpc", ADD, {**RPC_HEADERS, "Cookie": cookie})
    wrong = tree.request("POST", "/rpc", ADD, {**RPC_HEADERS, "Cookie": cookie, "X-CSRF-Token": "x" * 43})
    right = tree.request("POST", "/rpc", ADD, {**RPC_HEADERS, "Cookie": cookie, "X-CSRF-Token": str(who["csrf"])})
    assert missing.status == 403
    assert "CSRF" in missing.json()["error"]
    assert wrong.status == 403
    assert right.status == 200
    assert right.json()["result"] == 3


def test_a_wrong_token_does_not_log_in(tree: HttpTree) -> None:
    tree.token("olga")
    for body in ({"token": "nua_0123456789abcdef_" + "A" * 43}, {"token": 5}, {}):
        reply = tree.request("POST", "/login", body, RPC_HEADERS)
        assert reply.status in {400, 401}, body
        assert "set-cookie" not in reply.headers
    assert tree.request("POST", "/login", json.dumps({"token": "x"}), {"Content-Type": "text/plain"}).status == 415


def test_logout_ends_the_session(tree: HttpTree) -> None:
    cookie, who, _ = _login(tree, tree.token("olga"))
    headers = {**RPC_HEADERS, "Cookie": cookie, "X-CSRF-Token": str(who["csrf"])}
    assert tree.request("POST", "/logout", {}, headers).status == 204
    assert tree.request("POST", "/rpc", ADD, headers).status == 401
    assert tree.request("GET", "/session", headers={"Cookie": cookie}).status == 401


def test_a_session_ends_with_its_token(tree_factory: Callable[..., HttpTree]) -> None:
    now = [time.time()]  # the token's expiry is set by the daemon's own clock
    tree = tree_factory(clock=lambda: now[0])
    token = tree.token("olga", ttl_s=120)
    cookie, who, _ = _login(tree, token)
    headers = {**RPC_HEADERS, "Cookie": cookie, "X-CSRF-Token": str(who["csrf"])}
    assert tree.request("POST", "/rpc", ADD, headers).status == 200
    now[0] = tree.shared.tokens.check(token, 0).expires_at  # type: ignore[union-attr]
    ended = tree.request("POST", "/rpc", ADD, headers)
    assert ended.status == 401
    assert "log in again" in ended.json()["error"]


def test_a_session_ends_after_session_s(tree_factory: Callable[..., HttpTree]) -> None:
    now = [1_000_000_000.0]
    tree = tree_factory(clock=lambda: now[0], NUA_HTTP_SESSION_S="60")
    cookie, _who, set_cookie = _login(tree, tree.token("olga", ttl_s=3600))
    assert "Max-Age=60" in set_cookie
    now[0] += 60
    assert tree.request("GET", "/session", headers={"Cookie": cookie}).status == 401


def test_the_console_page_is_served_with_a_strict_content_security_policy(tree: HttpTree) -> None:
    page = tree.request("GET", "/")
    script = tree.request("GET", "/console.js")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert b"/console.js" in page.body
    assert script.status == 200
    assert script.headers["content-type"].startswith("text/javascript")


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_under_tls_the_cookie_is_secure(tree_factory: Callable[..., HttpTree], tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    tree = tree_factory(NUA_HTTP_TLS_CERT=str(cert), NUA_HTTP_TLS_KEY=str(key))
    token = tree.token("olga")
    context = ssl.create_default_context(cafile=str(cert))
    conn = http.client.HTTPSConnection(*tree.address, timeout=10, context=context)
    try:
        conn.request("POST", "/login", body=json.dumps({"token": token}), headers=RPC_HEADERS)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        assert "Secure" in (response.getheader("set-cookie") or "")
        conn.request("POST", "/rpc", body=json.dumps(ADD), headers={**RPC_HEADERS, "Authorization": f"Bearer {token}"})
        assert json.loads(conn.getresponse().read())["result"] == 3
    finally:
        conn.close()
