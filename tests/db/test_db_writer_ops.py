"""Every operation of the DB writer and its typed errors, asked directly (no ZeroMQ), on every backend."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pykka
import pytest
import sqlalchemy as sa
from dbkit import every_item

from nua.actors.call import call
from nua.model import checks
from nua.model import commands as cmd
from nua.model.errors import ConflictError, InternalError, InvalidError, NotFoundError
from nua.model.password import verify_password
from nua.model.user import users
from nua.settings import Settings

MAX_VALUE = 65536
USER_KEYS = {"id", "username", "email", "role", "display_name", "created_at", "updated_at"}


def add(writer: pykka.ActorRef[Any], settings: Settings, name: str, **extra: Any) -> dict[str, Any]:
    data = {"username": name, "email": f"{name}@example.org", "password": f"pw-{name}", **extra}
    user: dict[str, Any] = writer.ask(checks.user_add(data, settings.security))
    return user


def stored_hash(db_url: str, user_id: int) -> str:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            query = sa.select(users.c.password_hash).where(users.c.id == user_id)
            return str(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


# -- users ----------------------------------------------------------------------------------


def test_add_returns_the_new_users_dict_without_any_password(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    user = add(writer, settings, "alice", role="admin", display_name="Alice A.")

    assert set(user) == USER_KEYS
    assert user["id"] == 1
    assert (user["username"], user["email"], user["role"], user["display_name"]) == (
        "alice",
        "alice@example.org",
        "admin",
        "Alice A.",
    )
    created = datetime.fromisoformat(user["created_at"])
    assert created.utcoffset() is not None
    assert created.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert writer.ask(cmd.GetUser(1)) == user


def test_add_defaults_role_and_display_name(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    user = add(writer, settings, "bob")
    assert (user["role"], user["display_name"]) == ("user", "")


def test_password_is_stored_as_a_verifiable_salted_hash(
    writer: pykka.ActorRef[Any], settings: Settings, db_url: str
) -> None:
    first = add(writer, settings, "carol", salt="the original API's salt, ignored")
    second = add(writer, settings, "dave")
    writer.ask(cmd.UpdateUser(second["id"], "password_hash", stored_hash(db_url, first["id"])))

    carol_hash = stored_hash(db_url, first["id"])
    assert "pw-carol" not in carol_hash
    assert verify_password("pw-carol", carol_hash)
    assert not verify_password("pw-dave", carol_hash)
    fresh = checks.user_update(second["id"], "password", "pw-carol", settings.security)
    writer.ask(fresh)
    assert stored_hash(db_url, second["id"]) != carol_hash  # same password, another salt
    assert verify_password("pw-carol", stored_hash(db_url, second["id"]))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, 11),  # missing: next free
        (-5, 11),  # negative: next free
        (10, 11),  # taken: next free
        (3, 3),  # free: used as given
        (0, 0),
    ],
)
def test_add_id_rule(writer: pykka.ActorRef[Any], settings: Settings, given: int | None, expected: int) -> None:
    add(writer, settings, "first", id=10)
    extra = {} if given is None else {"id": given}
    assert add(writer, settings, "second", **extra)["id"] == expected


def test_first_user_without_id_gets_1_and_ids_follow_the_largest(
    writer: pykka.ActorRef[Any], settings: Settings
) -> None:
    assert add(writer, settings, "a")["id"] == 1
    assert add(writer, settings, "b", id=40)["id"] == 40
    assert add(writer, settings, "c", id=2)["id"] == 2
    assert add(writer, settings, "d")["id"] == 41


@pytest.mark.parametrize("field", ["username", "email"])
def test_add_conflict_names_the_field(writer: pykka.ActorRef[Any], settings: Settings, field: str) -> None:
    add(writer, settings, "erin")
    data = {"username": "other", "email": "other@example.org", "password": "x"}
    data[field] = "erin" if field == "username" else "erin@example.org"

    with pytest.raises(ConflictError) as caught:
        writer.ask(checks.user_add(data, settings.security))

    assert caught.value.data == {"entity": "user", "field": field, "value": data[field]}
    assert writer.ask(cmd.CountUsers()) == 1


def test_get_unknown_user_is_not_found(writer: pykka.ActorRef[Any]) -> None:
    with pytest.raises(NotFoundError) as caught:
        writer.ask(cmd.GetUser(7))
    assert caught.value.data == {"entity": "user", "id": 7}


def test_list_filters_are_or_ed_and_ordered_by_id(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    for name, user_id in [("zed", 5), ("amy", 9), ("kim", 2), ("lou", 7)]:
        add(writer, settings, name, id=user_id)

    def ids(request: Any) -> list[int]:
        return [user["id"] for user in writer.ask(checks.user_list(request, rpc=settings.rpc))["items"]]

    assert ids(None) == [2, 5, 7, 9]
    assert ids({}) == [2, 5, 7, 9]
    assert ids({"all": True, "ids": [5]}) == [2, 5, 7, 9]
    assert ids({"ids": [9, 5, 100]}) == [5, 9]
    assert ids({"names": ["kim"]}) == [2]
    assert ids({"mails": ["lou@example.org"]}) == [7]
    assert ids({"ids": [9], "names": ["kim"], "mails": ["zed@example.org"]}) == [2, 5, 9]
    assert ids({"names": ["nobody"]}) == []
    assert all(set(user) == USER_KEYS for user in writer.ask(cmd.ListUsers())["items"])


def test_count(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    assert writer.ask(cmd.CountUsers()) == 0
    for name in ("a", "b", "c"):
        add(writer, settings, name)
    assert writer.ask(cmd.CountUsers()) == 3


@pytest.mark.parametrize(
    ("key", "value"),
    [("username", "renamed"), ("email", "new@example.org"), ("role", "admin"), ("display_name", "Frank F.")],
)
def test_update_sets_one_field_and_returns_the_user(
    writer: pykka.ActorRef[Any], settings: Settings, key: str, value: str
) -> None:
    before = add(writer, settings, "frank")

    after = writer.ask(checks.user_update(before["id"], key, value, settings.security))

    assert after == writer.ask(cmd.GetUser(before["id"]))
    assert after[key] == value
    assert {k: v for k, v in after.items() if k not in {key, "updated_at"}} == {
        k: v for k, v in before.items() if k not in {key, "updated_at"}
    }
    assert after["updated_at"] > before["updated_at"]


def test_update_errors(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    add(writer, settings, "gina")
    hank = add(writer, settings, "hank")

    with pytest.raises(NotFoundError):
        writer.ask(checks.user_update(99, "role", "admin", settings.security))
    with pytest.raises(ConflictError) as caught:
        writer.ask(checks.user_update(hank["id"], "username", "gina", settings.security))
    assert caught.value.field == "username"
    with pytest.raises(ConflictError) as caught:
        writer.ask(checks.user_update(hank["id"], "email", "gina@example.org", settings.security))
    assert caught.value.field == "email"
    # Setting a user's own value again is no conflict.
    assert writer.ask(checks.user_update(hank["id"], "username", "hank", settings.security))["username"] == "hank"
    assert writer.ask(cmd.GetUser(hank["id"]))["email"] == "hank@example.org"


def test_delete_counts_what_existed(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    for name in ("a", "b", "c", "d"):
        add(writer, settings, name)

    assert writer.ask(checks.user_delete([1, 3, 3, 42])) == 2
    assert [user["id"] for user in writer.ask(cmd.ListUsers())["items"]] == [2, 4]
    assert writer.ask(checks.user_delete([])) == 0
    assert writer.ask(cmd.DeleteAllUsers()) == 2
    assert writer.ask(cmd.CountUsers()) == 0
    assert writer.ask(cmd.DeleteAllUsers()) == 0


def test_delete_many_ids_at_once(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    for index in range(5):
        add(writer, settings, f"u{index}")
    assert writer.ask(checks.user_delete(list(range(2000)))) == 5


# -- groups ---------------------------------------------------------------------------------


def test_groups_and_members(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    for name in ("ann", "ben", "cid"):
        add(writer, settings, name)
    ops = writer.ask(checks.group_add("ops"))
    assert ops["name"] == "ops"
    assert ops["source"] == ""
    assert ops["members"] == 0
    writer.ask(checks.group_add("dev", "ldap"))

    assert writer.ask(checks.group_add_members("ops", [3, 1])) == 2
    assert writer.ask(checks.group_add_members("ops", [1, 2])) == 1  # 1 already in
    members = writer.ask(checks.group_members("ops", rpc=settings.rpc))["items"]
    assert [user["username"] for user in members] == ["ann", "ben", "cid"]
    assert [(g["name"], g["source"], g["members"]) for g in writer.ask(cmd.ListGroups())["items"]] == [
        ("dev", "ldap", 0),
        ("ops", "", 3),
    ]

    assert writer.ask(checks.group_remove_members("ops", [2, 99])) == 1
    writer.ask(checks.user_delete([3]))  # memberships go with the user
    assert [user["id"] for user in writer.ask(checks.group_members("ops", rpc=settings.rpc))["items"]] == [1]

    assert writer.ask(checks.group_delete("ops")) == 1
    with pytest.raises(NotFoundError) as missing:
        writer.ask(checks.group_delete("ops"))
    assert missing.value.data == {"entity": "group", "name": "ops"}
    assert [g["name"] for g in writer.ask(cmd.ListGroups())["items"]] == ["dev"]
    assert writer.ask(cmd.CountUsers()) == 2  # deleting a group deletes no user


def test_group_errors(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    add(writer, settings, "ann")
    writer.ask(checks.group_add("ops"))

    with pytest.raises(ConflictError) as conflict:
        writer.ask(checks.group_add("ops"))
    assert conflict.value.data == {"entity": "group", "field": "name", "value": "ops"}
    with pytest.raises(NotFoundError) as missing_group:
        writer.ask(checks.group_members("nope", rpc=settings.rpc))
    assert missing_group.value.data == {"entity": "group", "name": "nope"}
    with pytest.raises(NotFoundError) as missing_user:
        writer.ask(checks.group_add_members("ops", [1, 77]))
    assert missing_user.value.data == {"entity": "user", "id": 77}
    assert writer.ask(checks.group_members("ops", rpc=settings.rpc))["items"] == []  # nothing half-added


# -- settings -------------------------------------------------------------------------------


def test_the_configuration_is_not_in_the_settings_table_and_its_keys_are_refused(
    writer: pykka.ActorRef[Any],
) -> None:
    assert every_item(writer, cmd.ListSettings()) == []
    for key in ("zmq.port", "db.url", "Server.log_level", "services.web.command", "rpc"):
        with pytest.raises(InvalidError) as refused:
            checks.setting_set(key, 1, MAX_VALUE)
        assert refused.value.data["field"] == "key"
        assert "configuration" in refused.value.message
    assert writer.ask(checks.setting_set("zmqish.port", 1, MAX_VALUE))["value"] == 1  # a prefix, not a section


def test_setting_get_set_list(writer: pykka.ActorRef[Any]) -> None:
    value = {"nested": [1, 2.5, None, True, "x"], "n": 3}
    stored = writer.ask(checks.setting_set("app.theme", value, MAX_VALUE))
    assert stored["key"] == "app.theme"
    assert stored["value"] == value
    assert writer.ask(checks.setting_get("app.theme")) == stored

    replaced = writer.ask(checks.setting_set("app.theme", "dark", MAX_VALUE))
    assert replaced["value"] == "dark"
    assert writer.ask(checks.setting_get("app.theme"))["value"] == "dark"
    assert writer.ask(checks.setting_set("app.none", None, MAX_VALUE))["value"] is None
    assert writer.ask(checks.setting_get("app.none"))["value"] is None
    keys = [row["key"] for row in every_item(writer, cmd.ListSettings())]
    assert keys.count("app.theme") == 1

    with pytest.raises(NotFoundError) as caught:
        writer.ask(checks.setting_get("app.missing"))
    assert caught.value.data == {"entity": "setting", "key": "app.missing"}


# -- robustness -----------------------------------------------------------------------------


def test_bad_commands_never_kill_the_writer(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    add(writer, settings, "ivy")
    duplicate = checks.user_add({"username": "ivy", "email": "i@x.org", "password": "p"}, settings.security)
    unheard = [call(writer, duplicate), call(writer, cmd.GetUser(404))]  # calls nobody waits for
    with pytest.raises(InternalError):
        writer.ask(cmd.SetSetting("bad", object()))  # not JSON: an unexpected failure inside one command
    with pytest.raises(TypeError):
        writer.ask("not a command")

    assert writer.ask(cmd.CountUsers()) == 1
    assert writer.is_alive()
    assert [type(reply.exception(timeout=0)) for reply in unheard] == [ConflictError, NotFoundError]


def test_prepared_inputs_are_rejected_before_the_writer(settings: Settings) -> None:
    with pytest.raises(InvalidError) as caught:
        checks.user_add({"username": "x", "email": "x@y", "password": "p", "colour": "red"}, settings.security)
    assert caught.value.field == "colour"


def test_list_with_long_filters(writer: pykka.ActorRef[Any], settings: Settings) -> None:
    for name in ("a", "b", "c"):
        add(writer, settings, name)
    # Past one IN list's chunk (direct commands have no bound on their filters; requests do).
    command = cmd.ListUsers(ids=(*range(3, 1500), 1), names=(*(f"n{index}" for index in range(1200)), "b"))
    assert [user["id"] for user in writer.ask(command)["items"]] == [1, 2, 3]
    first = writer.ask(dataclasses.replace(command, limit=2))
    assert ([user["id"] for user in first["items"]], first["next"]) == ([1, 2], 2)
    last = writer.ask(dataclasses.replace(command, limit=2, after=2))
    assert last == {"items": [writer.ask(cmd.GetUser(3))], "next": None}
