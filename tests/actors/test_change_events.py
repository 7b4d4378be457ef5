"""The events of committed changes (published by the DB writer) and of health changes: what they say, and never."""

from __future__ import annotations

from datetime import UTC, datetime

from nua.actors.change_events import change_event
from nua.actors.events import EventHub
from nua.actors.health import Health
from nua.model import commands as cmd
from nua.model.audit import AuditEntry

HASH = "scrypt$16384$8$1$salt$hash"


def test_each_change_names_what_changed_and_who_never_a_value() -> None:
    entry = AuditEntry.of("alice", "admin", "user_update", {"id": 3})
    assert change_event(cmd.Audited(cmd.UpdateUser(3, "password_hash", HASH), entry), {"id": 3}) == (
        "user.changed",
        {"change": "update", "id": 3, "field": "password", "by": "alice"},
    )
    assert change_event(cmd.AddUser("bob", "b@x.org", HASH), {"id": 7}) == (
        "user.changed",
        {"change": "add", "id": 7, "username": "bob"},
    )
    assert change_event(cmd.SetSetting("smtp.password", "s3cret"), {"key": "smtp.password"}) == (
        "setting.changed",
        {"change": "set", "key": "smtp.password"},
    )
    assert change_event(cmd.AddKey("ops", "K" * 40, "operator"), {}) == (
        "key.changed",
        {"change": "add", "name": "ops", "role": "operator"},
    )


def test_reads_bookkeeping_and_changes_that_changed_nothing_make_no_event() -> None:
    assert change_event(cmd.GetSetting("a"), {"key": "a"}) is None
    assert change_event(cmd.EnsureKey("local-me", "K" * 40, "admin"), {}) is None
    assert change_event(cmd.DeleteUsers((5,)), 0) is None
    assert change_event(cmd.DeleteGroup("ops"), 1) == ("group.changed", {"change": "delete", "name": "ops", "count": 1})


def test_health_publishes_each_degradation_and_recovery_once() -> None:
    hub = EventHub(boot="h")
    health = Health(hub)
    assert health.degrade("db_writer", "disk full")
    assert not health.degrade("db_writer", "disk full")  # no change: no event
    assert health.degrade("db_writer", "read-only")
    assert health.recover("db_writer")
    assert not health.recover("db_writer")
    events = hub.read(0).events
    assert [(e.kind, e.facts.get("reason")) for e in events] == [
        ("daemon.degraded", "disk full"),
        ("daemon.degraded", "read-only"),
        ("daemon.recovered", None),
    ]
    assert events[2].facts["degraded"] is False


def test_a_new_token_says_whose_and_until_when_never_its_hash() -> None:
    issued = cmd.IssueToken("ops", "0123456789abcdef", "f" * 64, datetime(2030, 1, 1, tzinfo=UTC))
    made = change_event(issued, {"name": "ops", "expires_at": "2030-01-01T00:00:00+00:00"})
    assert made == (
        "key.changed",
        {"change": "token", "name": "ops", "token_id": "0123456789abcdef", "expires_at": "2030-01-01T00:00:00+00:00"},
    )
    assert "f" * 64 not in repr(made)
