"""HTTP bearer tokens in the key store, on SQLite and PostgreSQL: one per key, only the hash, gone with the key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pykka
import pytest

from nua import bearer_tokens, curve_keys
from nua.model import checks
from nua.model import commands as cmd
from nua.model.errors import InvalidError, NotFoundError


def _issue(writer: pykka.ActorRef[Any], name: str, ttl_s: float = 60.0) -> tuple[bearer_tokens.Token, dict[str, Any]]:
    token = bearer_tokens.make()
    return token, writer.ask(checks.key_token(name, token.token_id, token.token_hash, ttl_s))


def test_a_key_has_one_token_its_hash_listed_with_the_keys_role(
    writer: pykka.ActorRef[Any], reader: pykka.ActorRef[Any]
) -> None:
    writer.ask(checks.key_add("olga", curve_keys.generate().public, "operator"))
    _issue(writer, "olga")
    token, row = _issue(writer, "olga", ttl_s=120.0)  # replaces the first
    assert row["name"] == "olga"
    assert row["role"] == "operator"
    assert row["token_id"] == token.token_id
    assert "token_hash" not in row
    expires = datetime.fromisoformat(row["expires_at"])
    assert 100 < (expires - datetime.now(UTC)).total_seconds() <= 120
    listed = reader.ask(cmd.ListTokens())["items"]
    assert [(item["name"], item["role"], item["token_id"], item["token_hash"]) for item in listed] == [
        ("olga", "operator", token.token_id, token.token_hash)
    ]


def test_removing_the_key_removes_its_token(writer: pykka.ActorRef[Any], reader: pykka.ActorRef[Any]) -> None:
    writer.ask(checks.key_add("olga", curve_keys.generate().public, "operator"))
    _issue(writer, "olga")
    writer.ask(checks.key_remove("olga"))
    assert reader.ask(cmd.ListTokens())["items"] == []


def test_a_token_needs_an_existing_key_and_well_formed_parts(writer: pykka.ActorRef[Any]) -> None:
    token = bearer_tokens.make()
    with pytest.raises(NotFoundError):
        writer.ask(checks.key_token("nobody", token.token_id, token.token_hash, 60))
    for parts, field in (
        (("XYZ", token.token_hash, 60), "token_id"),
        ((token.token_id, "00", 60), "token_hash"),
        ((token.token_id, token.token_hash, 0), "ttl_s"),
        ((token.token_id, token.token_hash, float("inf")), "ttl_s"),
        ((token.token_id, token.token_hash, True), "ttl_s"),
    ):
        with pytest.raises(InvalidError) as raised:
            checks.key_token("olga", *parts)
        assert raised.value.field == field
