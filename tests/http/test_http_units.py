"""The HTTP transport's pure parts: tokens, the token cache, sessions, the Host and JSON rules."""

from __future__ import annotations

from datetime import UTC, datetime

from nua import bearer_tokens
from nua.http import guard
from nua.http.request import made
from nua.http.sessions import Sessions, csrf_matches
from nua.rpc.token_cache import EXPIRED, UNKNOWN, Proved, TokenCache
from nua.settings import load


def _row(name: str, token: bearer_tokens.Token, role: str = "operator", expires: float = 2e9) -> dict[str, object]:
    return {
        "name": name,
        "role": role,
        "token_id": token.token_id,
        "token_hash": token.token_hash,
        "expires_at": datetime.fromtimestamp(expires, UTC),
    }


def test_a_token_is_its_id_and_a_secret_whose_hash_alone_is_kept() -> None:
    token = bearer_tokens.make()
    parts = bearer_tokens.parse(token.text)
    assert parts is not None
    assert parts[0] == token.token_id
    assert bearer_tokens.proves(parts[1], token.token_hash)
    assert parts[1] not in token.token_hash
    assert not bearer_tokens.proves(parts[1][:-1] + "A", token.token_hash)
    for text in ("", "nua_xyz_abc", token.text + "A", token.text.replace("nua_", "xyz_"), "nua_" + "a" * 200):
        assert bearer_tokens.parse(text) is None


def test_the_cache_proves_expires_and_forgets_tokens() -> None:
    cache = TokenCache()
    first, second = bearer_tokens.make(), bearer_tokens.make()
    cache.load([_row("olga", first, expires=1000.0)])
    proved = cache.check(first.text, 999.0)
    assert isinstance(proved, Proved)
    assert (proved.caller.name, proved.caller.role.label) == ("olga", "operator")
    assert cache.check(first.text, 1000.0) is EXPIRED
    assert cache.check(second.text, 0.0) is UNKNOWN
    cache.put(_row("olga", second))  # replaces olga's first token
    assert cache.check(first.text, 0.0) is UNKNOWN
    assert isinstance(cache.check(second.text, 0.0), Proved)
    cache.drop("olga")
    assert cache.check(second.text, 0.0) is UNKNOWN


def test_a_load_read_across_a_change_is_refused() -> None:
    cache = TokenCache()
    token = bearer_tokens.make()
    read_at = cache.version
    cache.drop("olga")  # a change committed while the rows were read
    assert not cache.load([_row("olga", token)], read_at=read_at)
    assert cache.check(token.text, 0.0) is UNKNOWN


def test_sessions_are_bounded_and_expire() -> None:
    sessions = Sessions(capacity=2)
    first = sessions.open("t1", 100.0)
    second = sessions.open("t2", 100.0)
    third = sessions.open("t3", 100.0)
    assert sessions.find(first.session_id, 0.0) is None  # the oldest went first
    assert sessions.find(second.session_id, 0.0) == second
    assert sessions.find(third.session_id, 100.0) is None
    assert len(sessions) == 1
    assert csrf_matches(second, second.csrf)
    assert not csrf_matches(second, None)
    assert not csrf_matches(second, second.csrf[:-1] + "é")


def test_host_names_and_json_declarations() -> None:
    settings = load(environ={"NUA_HTTP_PORT": "8080", "NUA_HTTP_ALLOWED_HOSTS": "nua.example.org"}).http
    hosts = guard.allowed_hosts(settings)
    assert {"127.0.0.1", "localhost", "::1", "nua.example.org"} <= hosts
    assert guard.host_name("[::1]:8080") == "::1"
    assert guard.host_name("NUA.example.org:443") == "nua.example.org"
    assert guard.host_name("localhost") == "localhost"

    def declared(value: str | None) -> guard.Refused | None:
        headers = [] if value is None else [(b"content-type", value.encode())]
        return guard.check_json(made(b"POST", b"/rpc", headers, b"{}"))

    assert declared("application/json") is None
    assert declared("Application/JSON; charset=UTF-8") is None
    for value in (None, "text/plain", "application/json-seq", "application/json; charset=utf-16"):
        refused = declared(value)
        assert refused is not None
        assert refused.status == 415
