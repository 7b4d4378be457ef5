"""A cron job's call runs as its key would call: checked against the key's role, audited under its name."""

from __future__ import annotations

from typing import Any

import pytest
from rpc_helpers import Tree

from nua import curve_keys
from nua.job_settings import CallAction
from nua.model import commands as cmd
from nua.model.cron_operations import FILE_OWNER
from nua.rpc.errors import ForbiddenError, InvalidParamsError
from nua.rpc.job_calls import REMOVED, JobCalls
from nua.rpc.key_cache import KeyCache
from nua.rpc.methods.key import KeyMethods
from nua.rpc.methods.setting import SettingMethods
from nua.rpc.methods.user import UserMethods
from nua.rpc.plugins import add_groups
from nua.rpc.services import DB_READER, Services


@pytest.fixture
def calls(tree: Tree) -> JobCalls:
    services = Services(tree.settings, tree.directory)
    add_groups(services.registry, [SettingMethods, UserMethods], services)
    made = JobCalls(services.registry, services)
    yield made
    made.close()


def trail(calls: JobCalls) -> list[dict[str, Any]]:
    return list(calls.services.ask(DB_READER, cmd.ListAudit(limit=100)).result(10)["items"])


def test_check_names_what_is_wrong(calls: JobCalls) -> None:
    assert calls.check(CallAction("setting_set", ["k", 1]), "operator") is None
    assert "no method" in str(calls.check(CallAction("nope"), "admin"))
    assert "needs the admin role" in str(calls.check(CallAction("user_delete_all"), "operator"))
    assert "params" in str(calls.check(CallAction("setting_set", ["only-a-key"]), "admin"))


def test_a_call_is_audited_under_the_jobs_key_and_role(calls: JobCalls) -> None:
    # An operator's method: the run keeps only that it answered, its type and size (readers read runs).
    summary = calls.call(CallAction("setting_set", {"key": "k", "value": 3}), "ops", "operator").result(10)
    assert summary == {"ok": True, "type": "object", "size": summary["size"]}
    assert summary["size"] > 0
    (record,) = trail(calls)
    assert (record["who"], record["role"], record["method"]) == ("ops", "operator", "setting_set")
    assert record["outcome"] == "ok"
    assert record["params"] == {"key": "k", "value": 3}
    assert calls.call(CallAction("setting_get", ["k"]), "ops", "operator").result(10)["value"] == 3
    assert len(trail(calls)) == 1  # a read is not recorded


def test_a_call_its_role_does_not_allow_is_refused_and_recorded_denied(calls: JobCalls) -> None:
    with pytest.raises(ForbiddenError):
        calls.call(CallAction("setting_set", ["k", 1]), "viewer", "reader").result(10)
    (record,) = trail(calls)
    assert (record["who"], record["role"], record["outcome"], record["detail"]) == (
        "viewer",
        "reader",
        "denied",
        "needs role operator",
    )
    with pytest.raises(InvalidParamsError):
        calls.call(CallAction("setting_set", ["k"]), "ops", "operator").result(10)


def keyed(tree: Tree, cache: KeyCache | None) -> JobCalls:
    services = Services(tree.settings, tree.directory)
    add_groups(services.registry, [SettingMethods, UserMethods], services)
    return JobCalls(services.registry, services, keys=lambda: cache)


def key_row(name: str, role: str) -> dict[str, Any]:
    return {"name": name, "public_key": f"{name:x<40}", "role": role}


def test_a_call_runs_with_the_role_its_key_has_now(tree: Tree) -> None:
    cache = KeyCache()
    cache.load([key_row("ops", "admin")])
    calls = keyed(tree, cache)
    try:
        # Stored as reader, but the key is an admin now: it runs, audited with the role it has now.
        assert calls.call(CallAction("setting_set", ["k", 1]), "ops", "reader").result(10)["ok"] is True
        cache.put(key_row("ops", "reader"))  # demoted: refused, though stored as operator
        with pytest.raises(ForbiddenError):
            calls.call(CallAction("setting_set", ["k", 2]), "ops", "operator").result(10)
        records = trail(calls)
        assert [(r["role"], r["outcome"]) for r in reversed(records)] == [("admin", "ok"), ("reader", "denied")]
    finally:
        calls.close()


def test_a_call_of_a_removed_key_fails_and_is_recorded_denied(tree: Tree) -> None:
    cache = KeyCache()
    cache.load([key_row("ops", "admin"), key_row("other", "admin")])
    calls = keyed(tree, cache)
    try:
        cache.drop("ops")
        with pytest.raises(ForbiddenError, match="no longer registered"):
            calls.call(CallAction("setting_set", ["k", 1]), "ops", "admin").result(10)
        (record,) = trail(calls)
        assert (record["who"], record["role"], record["outcome"]) == ("ops", REMOVED, "denied")
        # A file job has no key: it keeps its configured role.
        assert calls.call(CallAction("setting_set", ["k", 3]), FILE_OWNER, "operator").result(10)["ok"] is True
    finally:
        calls.close()


def test_no_key_store_loaded_yet_refuses_every_keyed_call(tree: Tree) -> None:
    calls = keyed(tree, None)
    try:
        with pytest.raises(ForbiddenError, match="not loaded yet"):
            calls.call(CallAction("setting_set", ["k", 1]), "ops", "admin").result(10)
    finally:
        calls.close()


def test_a_jobs_key_remove_changes_the_live_key_cache(tree: Tree) -> None:
    cache = KeyCache()
    cache.load([key_row("ops", "admin")])
    services = Services(tree.settings, tree.directory)
    add_groups(services.registry, [KeyMethods], services)
    calls = JobCalls(services.registry, services, keys=lambda: cache)
    try:
        public = curve_keys.generate().public
        calls.call(CallAction("key_add", ["victim", public, "operator"]), "ops", "admin").result(10)
        assert cache.caller_named("victim") is not None
        calls.call(CallAction("key_remove", ["victim"]), "ops", "admin").result(10)
        assert cache.caller_named("victim") is None
    finally:
        calls.close()
