"""A cron job's call runs as its key would call: checked against the key's role, audited under its name."""

from __future__ import annotations

from typing import Any

import pytest
from rpc_helpers import Tree

from nua.job_settings import CallAction
from nua.model import commands as cmd
from nua.rpc.errors import ForbiddenError, InvalidParamsError
from nua.rpc.job_calls import JobCalls
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
    assert calls.call(CallAction("setting_set", {"key": "k", "value": 3}), "ops", "operator").result(10)["value"] == 3
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
