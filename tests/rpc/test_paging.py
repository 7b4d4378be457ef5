"""Paged lists, value bounds and setting_delete through the gateway, and the CLI following pages."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rpc_helpers import Raw, Tree

from nua.rpc import errors
from nua.rpc.cli import every_page
from nua.rpc.client import Client

NUA = str(Path(__file__).resolve().parents[2] / "bin" / "nua")
SMALL_PAGES = {"NUA_RPC_PAGE_SIZE": "2", "NUA_RPC_MAX_PAGE_SIZE": "3", "NUA_DB_MAX_VALUE_BYTES": "64"}


@pytest.fixture
def small(tree_factory: Callable[..., Tree]) -> Tree:
    return tree_factory(**SMALL_PAGES)


def nua(tree: Tree, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NUA, *args, "--endpoint", tree.endpoint], capture_output=True, text=True, timeout=30, check=False
    )


def add_users(client: Client, count: int) -> None:
    for index in range(count):
        client.call("user_add", {"username": f"u{index}", "email": f"u{index}@example.org", "password": "pw"})


def test_lists_page_by_default_and_say_what_follows(small: Tree) -> None:
    with small.client() as client:
        add_users(client, 5)
        first = client.call("user_list")
        assert ([user["id"] for user in first["items"]], first["next"]) == ([1, 2], 2)
        assert client.call("user_list", None, 3, first["next"])["next"] is None
        assert [user["id"] for user in client.call("user_list", limit=3, after=2)["items"]] == [3, 4, 5]
        assert [user["id"] for user in every_page(client, "user_list", request={"ids": [5, 1, 3]})] == [1, 3, 5]
        client.call("group_add", "ops")
        client.call("group_add_members", "ops", [1, 2, 3])
        members = client.call("group_members", "ops")
        assert (len(members["items"]), members["next"]) == (2, 2)
        assert client.call("group_list") == {"items": [client.call("group_list")["items"][0]], "next": None}
        for n in (4, 1, 3, 2, 5):
            client.call("setting_set", f"site.k{n}", n)
        keys = [row["key"] for row in every_page(client, "setting_list")]
        assert keys == [f"site.k{n}" for n in range(1, 6)]  # two a page here, in key order


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("user_list", {"limit": 4}),
        ("user_list", {"limit": 0}),
        ("group_list", {"limit": 4}),
        ("group_members", {"group": "ops", "limit": 4}),
        ("setting_list", {"limit": -1}),
    ],
)
def test_a_limit_past_the_largest_page_is_invalid_params_naming_it(small: Tree, method: str, params: dict) -> None:
    with small.client() as client, pytest.raises(errors.InvalidParamsError) as caught:
        client.call(method, **params)
    assert caught.value.data["field"] == "limit"


def test_a_limit_of_the_wrong_type_names_it_too(small: Tree) -> None:
    with small.client() as client, pytest.raises(errors.InvalidParamsError) as caught:
        client.call("setting_list", limit="10")
    assert "limit" in json.dumps(caught.value.data)


def test_values_are_bounded_and_valid_and_settings_can_be_deleted(small: Tree) -> None:
    with small.client() as client:
        with pytest.raises(errors.InvalidParamsError) as caught:
            client.call("setting_set", "app.big", "x" * 100)
        assert caught.value.data["field"] == "value"
        with pytest.raises(errors.InvalidParamsError) as caught:
            client.call("user_add", {"username": "ad\u202emin", "email": "a@example.org", "password": "pw"})
        assert caught.value.data["field"] == "username"
        raw = Raw(small.endpoint)
        try:  # the JSON escape of a lone surrogate: refused at decode, or else by the data layer
            reply = raw.call(b'{"jsonrpc": "2.0", "method": "setting_set", "params": ["app.bad", "\\ud800"], "id": 1}')
        finally:
            raw.close()
        assert reply["error"]["code"] in {errors.INVALID_PARAMS, errors.INVALID_REQUEST}
        with pytest.raises(errors.NotFoundError):
            client.call("setting_get", "app.bad")
        client.call("setting_set", "app.small", "ok")
        assert client.call("setting_delete", "app.small") == 1
        with pytest.raises(errors.NotFoundError) as missing:
            client.call("setting_delete", "app.small")
        assert missing.value.data == {"entity": "setting", "key": "app.small"}


def test_a_deeply_nested_value_is_refused_and_never_poisons_the_reads(tree: Tree) -> None:
    # Stored, a value 500 levels deep made every setting_get and setting_list that met
    # it fail for every client (a recursive check hit Python's recursion limit).
    def nested(depth: int) -> Any:
        return [] if depth == 1 else [nested(depth - 1)]

    with tree.client() as client:
        with pytest.raises(errors.InvalidParamsError) as caught:
            client.call("setting_set", "app.deep", nested(500))
        assert caught.value.data["field"] == "value"
        assert "64 levels" in caught.value.message
        client.call("setting_set", "app.deep", nested(64))
        assert client.call("setting_get", "app.deep")["value"] == nested(64)
        assert "app.deep" in [item["key"] for item in every_page(client, "setting_list")]


def test_a_damaged_row_from_an_older_nua_is_listed_and_removed_with_the_cli(small: Tree, tmp_path: Path) -> None:
    with small.client() as client:
        client.call("setting_set", "app.fine", 1)
    database = sqlite3.connect(tmp_path / "nua.db")
    with database:
        database.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES ('app.poisoned', ?, '2026-01-01 00:00:00')",
            ('"bad \\ud800 value"',),
        )
    database.close()
    with small.client() as client:
        shown = client.call("setting_get", "app.poisoned")
        assert shown["value"] == "bad \ufffd value"
        assert "damaged" in shown
        listed = every_page(client, "setting_list")
        assert "app.poisoned" in [row["key"] for row in listed]
    removed = nua(small, "setting", "delete", "app.poisoned")
    assert removed.returncode == 0, removed.stderr
    assert nua(small, "setting", "delete", "app.poisoned").returncode == 1
    listed = json.loads(nua(small, "setting", "list", "--json").stdout)
    assert "app.poisoned" not in [row["key"] for row in listed]
    assert "app.fine" in [row["key"] for row in listed]


def test_the_cli_follows_every_page(small: Tree) -> None:
    with small.client() as client:
        add_users(client, 7)
        client.call("group_add", "ops")
        client.call("group_add_members", "ops", [7, 1, 2])
        client.call("group_add_members", "ops", [3, 4])
    listed = nua(small, "user", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [user["id"] for user in json.loads(listed.stdout)] == [1, 2, 3, 4, 5, 6, 7]
    table = nua(small, "user", "list").stdout.splitlines()
    assert len(table) == 1 + 7
    members = json.loads(nua(small, "group", "members", "ops", "--json").stdout)
    assert [user["id"] for user in members] == [1, 2, 3, 4, 7]
    filtered = json.loads(nua(small, "user", "list", "--ids", "6", "2", "--json").stdout)
    assert [user["id"] for user in filtered] == [2, 6]


def test_id_lists_of_one_call_are_bounded_like_a_page(small: Tree) -> None:
    with small.client() as client:
        add_users(client, 4)
        client.call("group_add", "ops")
        for method, params in (
            ("user_delete", [[1, 2, 3, 4]]),
            ("group_add_members", ["ops", [1, 2, 3, 4]]),
            ("group_remove_members", ["ops", [1, 2, 3, 4]]),
        ):
            with pytest.raises(errors.InvalidParamsError) as caught:
                client.call(method, *params)
            assert caught.value.data["field"] in {"ids", "user_ids"}
        assert client.call("user_count") == 4  # nothing was deleted
        assert client.call("user_delete", [1, 2, 3]) == 3
