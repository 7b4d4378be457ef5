"""The audit context of a call (``nua.rpc.auditing``), ``audit_list`` and ``nua audit``, on a real tree.

Until the dispatcher enters the context itself, the test plugin's ``audited_``
methods do what it will do: call a method inside ``auditing`` of its entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rpc_helpers import Tree
from test_cli import nua

from nua.model import commands as cmd
from nua.model.audit import AuditEntry
from nua.model.errors import NotFoundError
from nua.rpc import auditing
from nua.rpc.cli import since_timestamp
from nua.rpc.client import Client
from nua.rpc.errors import InvalidParamsError
from nua.rpc.methods.setting import SettingMethods
from nua.rpc.methods.user import UserMethods
from nua.rpc.plugins import add_groups
from nua.rpc.services import DB_READER, Services

ALICE = AuditEntry.of("alice", "operator", "setting_set", {"key": "b", "value": 2})


@pytest.fixture
def services(tree: Tree) -> Services:
    return Services(tree.settings, tree.directory)


def trail(services: Services, **filters: Any) -> list[dict[str, Any]]:
    """The audit records, newest first, as the DB reader lists them."""
    items: list[dict[str, Any]] = services.ask(DB_READER, cmd.ListAudit(limit=1000, **filters)).result(10)["items"]
    return items


# -- the context, at the level of Services -----------------------------------------------------


def test_a_change_inside_auditing_has_exactly_one_record_and_outside_none(services: Services) -> None:
    settings = SettingMethods(services)
    settings.set("a", 1).result(10)
    assert trail(services) == []

    with auditing.auditing(ALICE) as current:
        assert auditing.current() is current is ALICE
        settings.set("b", 2).result(10)
        assert settings.get("b").result(10)["value"] == 2  # a read: no record
        with pytest.raises(NotFoundError):
            settings.delete("missing").result(10)  # a change that fails: no record
    assert auditing.current() is None

    (record,) = trail(services)
    assert (record["who"], record["role"], record["method"], record["outcome"]) == (
        "alice",
        "operator",
        "setting_set",
        "ok",
    )
    assert record["params"] == {"key": "b", "value": 2}
    settings.set("c", 3).result(10)
    assert len(trail(services)) == 1


def test_a_pool_job_is_audited_only_with_its_entry_entered_in_the_pool_thread(services: Services) -> None:
    settings = SettingMethods(services)
    with ThreadPoolExecutor(max_workers=1) as pool:
        with auditing.auditing(ALICE):
            # A context variable does not follow a job into the pool by itself...
            pool.submit(settings.set, "unseen", 1).result(10).result(10)
        assert trail(services) == []
        # ...bound() enters it there.
        seen = AuditEntry.of("alice", "operator", "setting_set", {"key": "seen", "value": 2})
        pool.submit(auditing.bound(seen, settings.set), "seen", 2).result(10).result(10)
    assert [record["params"] for record in trail(services)] == [{"key": "seen", "value": 2}]
    assert auditing.current() is None


def test_nested_contexts_restore_the_outer_entry(services: Services) -> None:
    inner = AuditEntry.of("bob", "admin", "setting_delete", {"key": "x"})
    with auditing.auditing(ALICE):
        with auditing.auditing(inner):
            assert auditing.current() is inner
        assert auditing.current() is ALICE


def test_a_denied_call_is_recorded_with_the_role_it_needs(services: Services) -> None:
    denied = AuditEntry.of("eve", "reader", "user_delete_all")
    assert services.record_denied(denied, "admin").result(10) is None
    (record,) = trail(services)
    assert (record["who"], record["role"], record["outcome"], record["detail"]) == (
        "eve",
        "reader",
        "denied",
        "needs role admin",
    )


def test_call_entry_names_positional_params_so_that_secrets_are_redacted(services: Services) -> None:
    add_groups(services.registry, [UserMethods], services)
    method = services.registry.get("user_update")
    assert method is not None
    entry = auditing.call_entry("alice", "admin", method, [7, "password", "hunter2"])
    assert (entry.who, entry.role, entry.method) == ("alice", "admin", "user_update")
    assert entry.params == {"id": 7, "key": "password", "value": "***"}
    assert "hunter2" not in entry.params_json
    assert auditing.call_entry("alice", "admin", method, kwargs={"id": 7, "key": "role", "value": "x"}).params == {
        "id": 7,
        "key": "role",
        "value": "x",
    }
    # Params the method cannot take (a refused call): nameless, so none is kept.
    unbound = auditing.call_entry("alice", "admin", method, [1, "password", "hunter2", 0])
    assert unbound.params == {"unbound_params": "***"}


# -- through the gateway ---------------------------------------------------------------------------


@pytest.fixture
def alice(tree: Tree) -> Iterator[Client]:
    with tree.client(timeout=10) as client:
        yield client


def test_audited_calls_through_the_gateway_and_audit_list(alice: Client) -> None:
    user = alice.call(
        "audited_call", "alice", "admin", "user_add", [{"username": "u1", "email": "u1@x.org", "password": "pw-one"}]
    )
    alice.call("audited_call", "alice", "admin", "user_update", [user["id"], "password", "pw-two"])
    alice.call("audited_call", "bob", "operator", "setting_set", {"key": "smtp.password", "value": "pw-three"})
    alice.call("audited_call", "bob", "operator", "setting_get", ["smtp.password"])  # a read: not recorded
    with pytest.raises(Exception, match="already taken"):  # a conflict: rolled back, not recorded
        alice.call(
            "audited_call", "alice", "admin", "user_add", [{"username": "u1", "email": "u2@x.org", "password": "p"}]
        )
    alice.call("audited_deny", "eve", "reader", "user_delete_all", "admin")
    alice.call("setting_set", "plain", 1)  # the dispatcher's own context: the caller (auth is off here)

    page = alice.call("audit_list")
    assert page["next"] is None
    assert [(r["who"], r["method"], r["outcome"]) for r in page["items"]] == [
        ("(auth off)", "setting_set", "ok"),
        ("eve", "user_delete_all", "denied"),
        ("bob", "setting_set", "ok"),
        ("alice", "user_update", "ok"),
        ("alice", "user_add", "ok"),
    ]
    text = json.dumps(page)
    for secret in ("pw-one", "pw-two", "pw-three", "scrypt"):
        assert secret not in text
    assert page["items"][2]["params"] == {"key": "smtp.password", "value": "***"}
    assert [r["method"] for r in alice.call("audit_list", who="alice")["items"]] == ["user_update", "user_add"]
    assert [r["who"] for r in alice.call("audit_list", method="setting_set")["items"]] == ["(auth off)", "bob"]
    first = alice.call("audit_list", limit=2)
    assert [r["id"] for r in alice.call("audit_list", after=first["next"])["items"]] == [
        r["id"] for r in page["items"][2:]
    ]
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert alice.call("audit_list", since=later)["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [({"since": "last tuesday"}, "since"), ({"limit": 0}, "limit"), ({"who": ""}, "who"), ({"after": "x"}, "after")],
)
def test_audit_list_refuses_bad_params_naming_them(alice: Client, params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidParamsError) as raised:
        alice.call("audit_list", **params)
    assert isinstance(raised.value.data, dict)
    assert field in (raised.value.data.get("field"), raised.value.data.get("param"))


# -- nua audit -------------------------------------------------------------------------------------


def test_since_takes_an_iso_time_or_an_age() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert since_timestamp("90m", now) == "2026-03-01T10:30:00+00:00"
    assert since_timestamp("2d", now) == "2026-02-27T12:00:00+00:00"
    assert since_timestamp("1w", now) == "2026-02-22T12:00:00+00:00"
    assert since_timestamp("2026-02-01T08:00") == "2026-02-01T08:00:00+00:00"
    assert since_timestamp("2026-02-01T09:00:00+01:00") == "2026-02-01T08:00:00+00:00"


def test_nua_audit_lists_filters_and_limits(tree: Tree, alice: Client) -> None:
    for index in range(3):
        alice.call("audited_call", "alice" if index != 1 else "bob", "admin", "setting_set", [f"k{index}", index])
    alice.call("audited_call", "alice", "admin", "setting_delete", ["k0"])

    shown = nua(tree, "audit")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["id", "at", "who", "role", "method", "outcome", "detail", "params"]
    assert len(lines) == 5
    assert "setting_delete" in lines[1]

    listed = json.loads(nua(tree, "audit", "--json").stdout)
    assert [r["method"] for r in listed] == ["setting_delete", "setting_set", "setting_set", "setting_set"]
    assert [r["who"] for r in json.loads(nua(tree, "audit", "--who", "bob", "--json").stdout)] == ["bob"]
    deletes = json.loads(nua(tree, "audit", "--method", "setting_delete", "--json").stdout)
    assert [r["params"] for r in deletes] == [{"key": "k0"}]
    assert [r["id"] for r in json.loads(nua(tree, "audit", "--limit", "2", "--json").stdout)] == [
        r["id"] for r in listed[:2]
    ]
    assert len(json.loads(nua(tree, "audit", "--since", "1h", "--json").stdout)) == 4
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert json.loads(nua(tree, "audit", "--since", future, "--json").stdout) == []


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "yesterday"),
        ("--since", "5 minutes"),
        ("--limit", "0"),
        ("--limit", "ten"),
        ("--limit", "-3"),
    ],
)
def test_nua_audit_bad_arguments_are_one_usage_line_and_exit_2(tree: Tree, args: tuple[str, ...]) -> None:
    done = nua(tree, "audit", *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("nua: ")
    assert args[0] in done.stderr
