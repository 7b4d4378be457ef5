"""Bounded, valid, visible data: paging, value sizes, normalised names, damaged rows, on every backend."""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from typing import Any

import pykka
import pytest
import sqlalchemy as sa
from dbkit import every_item

import nua.settings
from nua.model import checks
from nua.model import commands as cmd
from nua.model.errors import InvalidError, NotFoundError
from nua.model.setting import settings_table
from nua.model.user import stored_iso
from nua.settings import SecuritySettings, Settings

FAST = SecuritySettings(scrypt_n=16, scrypt_r=1, scrypt_p=1)
RPC = nua.settings.load(environ={}).rpc


def invalid(call: Any, *args: Any, **kwargs: Any) -> InvalidError:
    with pytest.raises(InvalidError) as caught:
        call(*args, **kwargs)
    return caught.value


def add_users(writer: pykka.ActorRef[Any], settings: Settings, count: int) -> None:
    for index in range(count):
        data = {"username": f"u{index:03}", "email": f"u{index:03}@example.org", "password": "p"}
        writer.ask(checks.user_add(data, settings.security))


# -- paging ---------------------------------------------------------------------------------


def test_user_pages_follow_the_cursor_and_say_when_they_end(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    add_users(writer, settings, 7)
    first = writer.ask(checks.user_list(None, 3, None, rpc=settings.rpc))
    assert [user["id"] for user in first["items"]] == [1, 2, 3]
    assert first["next"] == 3
    second = writer.ask(checks.user_list(None, 3, first["next"], rpc=settings.rpc))
    assert ([user["id"] for user in second["items"]], second["next"]) == ([4, 5, 6], 6)
    last = writer.ask(checks.user_list(None, 3, second["next"], rpc=settings.rpc))
    assert ([user["id"] for user in last["items"]], last["next"]) == ([7], None)
    # A full last page says so: no empty page is needed to learn that the list ended.
    exact = writer.ask(checks.user_list(None, 7, None, rpc=settings.rpc))
    assert (len(exact["items"]), exact["next"]) == (7, None)
    # A cursor past the end, or between ids (a row deleted since), still pages on.
    assert writer.ask(checks.user_list(None, 3, 99, rpc=settings.rpc)) == {"items": [], "next": None}
    writer.ask(cmd.DeleteUsers((4,)))
    assert [user["id"] for user in writer.ask(checks.user_list(None, 2, 3, rpc=settings.rpc))["items"]] == [5, 6]


def test_filters_select_and_paging_walks_what_they_selected(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    add_users(writer, settings, 6)
    request = {"ids": [6, 2], "names": ["u003"], "mails": ["u004@example.org", "nobody@example.org"]}
    first = writer.ask(checks.user_list(request, 2, None, rpc=settings.rpc))
    assert ([user["id"] for user in first["items"]], first["next"]) == ([2, 4], 4)
    rest = writer.ask(checks.user_list(request, 2, first["next"], rpc=settings.rpc))
    assert ([user["id"] for user in rest["items"]], rest["next"]) == ([5, 6], None)
    everyone = every_item(writer, checks.user_list({"all": True, "ids": [1]}, 4, None, rpc=settings.rpc))
    assert len(everyone) == 6


def test_group_and_setting_pages(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    add_users(writer, settings, 5)
    for name in ("delta", "alpha", "charlie", "bravo"):
        writer.ask(checks.group_add(name))
    writer.ask(checks.group_add_members("alpha", [5, 1, 3, 4]))
    groups = writer.ask(checks.group_list(2, None, rpc=settings.rpc))
    assert ([group["name"] for group in groups["items"]], groups["next"]) == (["alpha", "bravo"], "bravo")
    assert groups["items"][0]["members"] == 4
    rest = writer.ask(checks.group_list(2, "bravo", rpc=settings.rpc))
    assert ([group["name"] for group in rest["items"]], rest["next"]) == (["charlie", "delta"], None)
    members = writer.ask(checks.group_members("alpha", 3, None, rpc=settings.rpc))
    assert ([user["id"] for user in members["items"]], members["next"]) == ([1, 3, 4], 4)
    assert [user["id"] for user in every_item(writer, checks.group_members("alpha", 1, rpc=RPC))] == [1, 3, 4, 5]
    for n in (7, 2, 9, 1, 5, 8, 3):
        writer.ask(checks.setting_set(f"site.k{n}", n, 100))
    keys = [row["key"] for row in every_item(writer, cmd.ListSettings(limit=5))]
    assert keys == sorted(keys)
    assert len(keys) == len(set(keys)) > 5
    after = keys[2]
    page = writer.ask(checks.setting_list(3, after, rpc=settings.rpc))
    assert [row["key"] for row in page["items"]] == keys[3:6]


def test_limit_and_cursor_are_checked() -> None:
    assert checks.user_list(rpc=RPC).limit == RPC.page_size
    assert checks.user_list(None, RPC.max_page_size, rpc=RPC).limit == RPC.max_page_size
    for bad in (0, -1, RPC.max_page_size + 1, "10", 2.0, True):
        assert invalid(checks.user_list, None, bad, rpc=RPC).field == "limit"
        assert invalid(checks.group_list, bad, rpc=RPC).field == "limit"
        assert invalid(checks.setting_list, bad, rpc=RPC).field == "limit"
        assert invalid(checks.group_members, "g", bad, rpc=RPC).field == "limit"
    assert invalid(checks.user_list, None, None, "3", rpc=RPC).field == "after"
    assert invalid(checks.group_members, "g", None, 2**64, rpc=RPC).field == "after"
    assert invalid(checks.setting_list, None, 3, rpc=RPC).field == "after"
    assert invalid(checks.group_list, None, "x" * 1000, rpc=RPC).field == "after"
    small = dataclasses.replace(RPC, page_size=500, max_page_size=20)
    assert checks.setting_list(rpc=small).limit == 20  # a default above the largest page is the largest page


# -- stored values --------------------------------------------------------------------------


def test_a_value_larger_than_max_value_bytes_is_refused_naming_the_field() -> None:
    limit = 64
    assert checks.setting_set("k", "x" * 62, limit).value == "x" * 62  # its JSON text is 64 bytes
    assert invalid(checks.setting_set, "k", "x" * 63, limit).field == "value"
    assert invalid(checks.setting_set, "k", "é" * 40, limit).field == "value"  # 80 bytes in UTF-8
    assert invalid(checks.setting_set, "k", {"a": ["y" * 60]}, limit).field == "value"
    assert invalid(checks.setting_set, "k", 10**70, limit).field == "value"
    error = invalid(checks.setting_set, "k", "z" * 10_000, limit)
    assert "value" not in error.data  # the error does not echo what was too large
    assert checks.setting_set("k", [1, "é"], limit).value == [1, "é"]


@pytest.mark.parametrize("value", ["\ud800", ["ok", "\udfff"], {"k\udc80": 1}, {"k": {"deep": ["a\ud834"]}}], ids=repr)
def test_no_unencodable_string_reaches_a_command(value: Any) -> None:
    assert invalid(checks.setting_set, "k", value, 65536).field == "value"


def test_unencodable_names_and_fields_are_refused() -> None:
    lone = "a\ud800"
    user = {"username": "u", "email": "u@example.org", "password": "p"}
    for field in ("username", "email", "display_name", "password", "role"):
        error = invalid(checks.user_add, {**user, field: lone}, FAST)
        assert error.field == field
        assert "value" not in error.data  # an echo of it could not be sent either
    assert invalid(checks.user_update, 1, "password", lone, FAST).field == "password"
    assert invalid(checks.group_add, lone).field == "name"
    assert invalid(checks.group_add, "g", lone).field == "source"
    assert invalid(checks.setting_set, lone, 1, 100).field == "key"
    assert invalid(checks.setting_get, lone).field == "key"
    assert invalid(checks.setting_delete, lone).field == "key"
    assert invalid(checks.user_list, {"names": [lone]}, rpc=RPC).field == "names"
    assert invalid(checks.group_list, None, lone, rpc=RPC).field == "after"


# -- names ----------------------------------------------------------------------------------

HIDDEN = {
    "right-to-left override": "\u202e",
    "zero width space": "\u200b",
    "left-to-right isolate": "\u2066",
    "right-to-left isolate": "\u2067",
    "first strong isolate": "\u2068",
    "pop directional isolate": "\u2069",
    "zero width joiner": "\u200d",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "NUL": "\x00",
    "next line (C1)": "\x85",
    "line separator": "\u2028",
    "no-break space": "\u00a0",
    "ideographic space": "\u3000",
    "hangul filler": "\u3164",
    "private use": "\ue000",
    "unassigned": "\u0378",
}


@pytest.mark.parametrize("char", HIDDEN.values(), ids=HIDDEN.keys())
def test_names_refuse_invisible_characters_naming_the_field(char: str) -> None:
    user = {"username": "eve", "email": "eve@example.org", "password": "p"}
    assert invalid(checks.user_add, {**user, "username": f"ad{char}min"}, FAST).field == "username"
    assert invalid(checks.user_add, {**user, "email": f"eve{char}@example.org"}, FAST).field == "email"
    assert invalid(checks.user_update, 1, "username", f"ad{char}min", FAST).field == "username"
    assert invalid(checks.user_update, 1, "email", f"e{char}@x.org", FAST).field == "email"
    assert invalid(checks.group_add, f"ops{char}").field == "name"
    assert invalid(checks.setting_set, f"site{char}.name", 1, 100).field == "key"


def test_the_reason_names_the_character() -> None:
    error = invalid(checks.user_add, {"username": "a\u202eb", "email": "a@b.org", "password": "p"}, FAST)
    assert "U+202E" in error.data["reason"]


def test_names_are_stored_in_nfc() -> None:
    decomposed = "jose\u0301"  # "josé" typed as e + combining acute
    composed = unicodedata.normalize("NFC", decomposed)
    command = checks.user_add({"username": decomposed, "email": f"{decomposed}@example.org", "password": "p"}, FAST)
    assert (command.username, command.email) == (composed, f"{composed}@example.org")
    assert checks.group_add(decomposed).name == composed
    assert checks.setting_set(f"k.{decomposed}", 1, 100).key == f"k.{composed}"
    assert checks.user_list({"names": [decomposed]}, rpc=RPC).names == (composed,)  # lookups match stored names
    assert checks.group_members(decomposed, rpc=RPC).group == composed


def test_display_names_keep_spaces_and_emoji_but_refuse_bidi_controls() -> None:
    user = {"username": "ann", "email": "ann@example.org", "password": "p"}
    family = "Ann \U0001f469\u200d\U0001f467"  # a ZWJ sequence: a format character with a purpose
    assert checks.user_add({**user, "display_name": family}, FAST).display_name == family
    for char in ("\u202e", "\u2066", "\u200f", "\x85", "\u2028"):
        assert invalid(checks.user_add, {**user, "display_name": f"Ann{char}"}, FAST).field == "display_name"


def test_rows_stored_before_the_rules_can_still_be_named() -> None:
    # Lookups take any non-empty valid string: a name an older nua accepted can be found and removed.
    assert checks.setting_delete("old\u200bkey").key == "old\u200bkey"
    assert checks.setting_get("old key").key == "old key"
    assert checks.group_delete("old\u202egroup").name == "old\u202egroup"
    assert invalid(checks.setting_delete, "").field == "key"


# -- damaged rows ---------------------------------------------------------------------------


def insert_damaged_row(db_url: str, key: str) -> None:
    """What an older nua stored from ``setting_set(key, ["ok", "\\ud800"])``: JSON escapes the surrogate."""
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO settings (key, value, updated_at) VALUES (:key, :value, :now)"),
                {"key": key, "value": json.dumps({"list": ["ok", "\ud800"]}), "now": "2026-01-01 00:00:00"},
            )
    finally:
        engine.dispose()


def test_a_damaged_row_is_shown_repaired_and_can_be_deleted(writer: pykka.ActorRef[Any], db_url: str) -> None:
    writer.ask(cmd.CountUsers())  # started: the schema exists
    insert_damaged_row(db_url, "app.poisoned")
    writer.ask(checks.setting_set("app.sound", "fine", 100))

    shown = writer.ask(checks.setting_get("app.poisoned"))
    assert shown["value"] == {"list": ["ok", "\ufffd"]}
    assert "setting_delete" in shown["damaged"]
    json.dumps(shown, ensure_ascii=False).encode("utf-8")  # the reply can be sent
    listed = {row["key"]: row for row in every_item(writer, cmd.ListSettings(limit=3))}
    assert listed["app.poisoned"] == shown
    assert listed["app.sound"]["value"] == "fine"
    assert "damaged" not in listed["app.sound"]

    assert writer.ask(checks.setting_delete("app.poisoned")) == 1
    with pytest.raises(NotFoundError) as caught:
        writer.ask(checks.setting_delete("app.poisoned"))
    assert caught.value.data == {"entity": "setting", "key": "app.poisoned"}
    assert "app.poisoned" not in {row["key"] for row in every_item(writer, cmd.ListSettings())}


def test_a_stored_value_is_read_back_the_same(writer: pykka.ActorRef[Any], db_url: str) -> None:
    value = {"emoji": "\U0001f600", "accents": "é", "nested": [{"x": None}]}
    writer.ask(checks.setting_set("app.unicode", value, 65536))
    assert writer.ask(checks.setting_get("app.unicode"))["value"] == value
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.select(settings_table.c.value).where(settings_table.c.key == "app.unicode"))
            assert stored.scalar_one() == value
    finally:
        engine.dispose()


def test_a_listed_user_is_the_user_read_alone(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    # Lists render timestamps from the stored text on SQLite; both ways must give the same reply.
    add_users(writer, settings, 3)
    writer.ask(checks.user_update(2, "display_name", "Two", settings.security))
    listed = writer.ask(cmd.ListUsers())["items"]
    assert listed == [writer.ask(cmd.GetUser(user_id)) for user_id in (1, 2, 3)]
    writer.ask(checks.group_add("g"))
    writer.ask(checks.group_add_members("g", [2]))
    assert writer.ask(cmd.GroupMembers("g"))["items"] == [listed[1]]


def test_stored_timestamps_in_another_form_are_still_rendered() -> None:
    assert stored_iso("2026-01-02 03:04:05.000006") == "2026-01-02T03:04:05.000006+00:00"
    assert stored_iso("2026-01-02 03:04:05") == "2026-01-02T03:04:05.000000+00:00"
    assert stored_iso("2026-01-02T03:04:05+02:00") == "2026-01-02T01:04:05.000000+00:00"
    assert stored_iso(None) is None


def test_a_page_of_large_settings_ends_before_it_outgrows_a_reply(writer: pykka.ActorRef[Any]) -> None:
    big = "v" * 1000
    for index in range(10):
        writer.ask(checks.setting_set(f"big.{index}", big, 65536))
    small = dataclasses.replace(RPC, max_reply_bytes=5000)  # a budget of 2,500 bytes: two values a page
    command = checks.setting_list(100, "big.", rpc=small)
    first = writer.ask(command)
    assert [row["key"] for row in first["items"]] == ["big.0", "big.1"]
    assert first["next"] == "big.1"
    keys = [row["key"] for row in every_item(writer, command) if row["key"].startswith("big.")]
    assert keys == [f"big.{index}" for index in range(10)]
    huge = dataclasses.replace(RPC, max_reply_bytes=10)  # smaller than one value: still one a page
    assert len(writer.ask(checks.setting_list(5, "big.", rpc=huge))["items"]) == 1
