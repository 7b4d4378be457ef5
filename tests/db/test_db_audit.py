"""The audit trail in the data layer, on every backend: records committed with their change or not at all.

Asked directly of the DB writer and the DB reader (no ZeroMQ): an Audited command
and its record share one transaction; a failing command, an aborted batch, records
that cannot be stored and an outage leave no record and no change; denied calls get
their own; ListAudit pages newest first and filters; retention prunes by a clock the test moves; the schema upgrade from
version 1 adds the table. Redaction is checked on its own.
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pykka
import pytest
import sqlalchemy as sa
from dbkit import ExitLog, Gate, GatedWriter, Writers, make_settings
from outagekit import FakeClock
from sqlalchemy import event

from nua.actors import db_writer
from nua.actors.call import call
from nua.actors.db_writer import CheckDatabase, DbWriter
from nua.actors.health import Health
from nua.actors.supervised import ChildContext
from nua.model import checks, operations, schema
from nua.model import commands as cmd
from nua.model import engine as db_engine
from nua.model.audit import (
    PARAMS_MAX_BYTES,
    REDACTED,
    STRING_MAX,
    AuditEntry,
    audit_table,
    redact,
    redacted_json,
    secret_name,
)
from nua.model.base import transaction_time
from nua.model.errors import ConflictError, InternalError, NotFoundError, UnavailableError
from nua.model.outage import Outage, OutageError
from nua.model.schema import meta
from nua.model.setting import settings_table
from nua.settings import Settings

ALICE = AuditEntry.of("alice", "admin", "setting_set", {"key": "k", "value": 1})


def entry(method: str, who: str = "alice", role: str = "admin", **params: Any) -> AuditEntry:
    return AuditEntry.of(who, role, method, params)


def records(settings: Settings) -> list[dict[str, Any]]:
    """Every audit record in the database, oldest first (params decoded), read on a connection of the test's own."""
    engine = sa.create_engine(settings.db.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(audit_table).order_by(audit_table.c.id)).mappings()
            return [{**row, "params": json.loads(row["params"])} for row in rows]
    finally:
        engine.dispose()


def outcome(future: Future[Any]) -> Any:
    try:
        return future.result(timeout=10)
    except Exception as exc:
        return type(exc)


# -- committed together, or not at all --------------------------------------------------


def test_an_audited_change_commits_with_its_record_and_replies_as_the_command(
    writer: pykka.ActorRef[Any], settings: Settings
) -> None:
    data = {"username": "bob", "email": "bob@example.org", "password": "hunter2-secret"}
    added = call(writer, cmd.Audited(checks.user_add(data, settings.security), entry("user_add", user_data=data)))

    user = added.result(timeout=10)
    assert user["username"] == "bob"
    assert writer.ask(cmd.GetUser(user["id"])) == user
    (record,) = records(settings)
    assert (record["who"], record["role"], record["method"], record["outcome"]) == ("alice", "admin", "user_add", "ok")
    assert record["detail"] == ""
    assert record["params"] == {"user_data": {"username": "bob", "email": "bob@example.org", "password": REDACTED}}
    assert record["at"].tzinfo is not None
    assert "hunter2" not in json.dumps(record, default=str)
    assert "scrypt" not in json.dumps(record, default=str)  # nor the hash


def test_a_failing_audited_command_leaves_neither_change_nor_record(
    writer: pykka.ActorRef[Any], settings: Settings
) -> None:
    writer.ask(cmd.SetSetting("kept", 1))
    with pytest.raises(NotFoundError):
        call(writer, cmd.Audited(cmd.DeleteSetting("missing"), entry("setting_delete"))).result(timeout=10)
    with pytest.raises(InternalError):  # an unexpected error inside the command
        call(writer, cmd.Audited(cmd.SetSetting("broken", object()), entry("setting_set"))).result(timeout=10)

    assert records(settings) == []
    with pytest.raises(NotFoundError):
        writer.ask(cmd.GetSetting("broken"))


def test_in_a_batch_each_change_commits_with_its_record_in_order(writers: Writers, settings: Settings) -> None:
    gate = Gate()
    writer = writers.start(gate, actor=GatedWriter)
    head = call(writer, cmd.Audited(cmd.SetSetting("head", 0), entry("setting_set", key="head")))
    gate.wait_entered()
    queued = [
        call(writer, cmd.Audited(cmd.AddGroup("ops"), entry("group_add", name="ops"))),
        call(writer, cmd.Audited(cmd.AddGroup("ops"), entry("group_add", name="ops-again"))),  # conflict
        call(writer, cmd.AddGroup("quiet")),  # not audited
        call(writer, cmd.Audited(cmd.SetSetting("bad", object()), entry("setting_set", key="bad"))),  # a bug
        call(writer, cmd.Audited(cmd.DeleteGroup("quiet"), entry("group_delete", name="quiet"))),
        call(writer, cmd.RecordDenied(entry("user_delete_all", who="eve", role="reader"), "admin")),
    ]
    gate.released.set()

    assert outcome(head)["key"] == "head"
    results = [outcome(future) for future in queued]
    assert results[0]["name"] == "ops"
    assert results[1] is ConflictError
    assert results[2]["name"] == "quiet"
    assert results[3:] == [InternalError, 1, None]
    found = records(settings)
    assert [(r["method"], r["params"], r["outcome"]) for r in found] == [
        ("setting_set", {"key": "head"}, "ok"),
        ("group_add", {"name": "ops"}, "ok"),
        ("group_delete", {"name": "quiet"}, "ok"),
        ("user_delete_all", {}, "denied"),
    ]
    assert found[-1]["detail"] == "needs role admin"
    assert (found[-1]["who"], found[-1]["role"]) == ("eve", "reader")
    assert len({r["at"] for r in found[1:]}) == 1  # one batch, one transaction, one timestamp


def test_a_batch_whose_records_cannot_be_stored_commits_nothing(
    writers: Writers, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(_conn: sa.Connection, _records: Any) -> None:
        msg = "the records cannot be stored (test)"
        raise RuntimeError(msg)

    monkeypatch.setattr(operations, "record_all", refuse)
    writer = writers.start()
    changed = call(writer, cmd.Audited(cmd.SetSetting("lost", 1), entry("setting_set", key="lost")))
    assert outcome(changed) is InternalError
    assert records(settings) == []
    engine = sa.create_engine(settings.db.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(settings_table).where(settings_table.c.key == "lost")).first() is None
    finally:
        engine.dispose()


class OutageAtCommitWriter(DbWriter):
    """A writer whose next commit fails as an outage (nua's own kind: the same on every backend)."""

    def setup(self) -> None:
        super().setup()

        def refuse(_conn: sa.Connection) -> None:
            raise OutageError(Outage("the disk is full (test)", reconnect=False))

        event.listen(self._conn, "commit", refuse, once=True)


def test_a_batch_aborted_by_an_outage_leaves_no_record(writers: Writers, settings: Settings) -> None:
    clock = FakeClock()
    exits = ExitLog()
    writers.exits.append(exits)
    writer = OutageAtCommitWriter.start(
        ChildContext("db_writer", 1, exits), settings, Health(), clock=clock, check_interval_s=None
    )
    writers.refs.append(writer)

    lost = call(writer, cmd.Audited(cmd.SetSetting("lost", 1), entry("setting_set", key="lost")))
    denied = call(writer, cmd.RecordDenied(entry("user_delete_all", role="reader"), "admin"))
    assert outcome(lost) is UnavailableError
    assert outcome(denied) is UnavailableError

    assert records(settings) == []
    clock.advance(60)
    writer.ask(CheckDatabase(), timeout=10)  # the retry: the database takes writes again
    call(writer, cmd.Audited(cmd.SetSetting("after", 2), entry("setting_set", key="after"))).result(timeout=10)
    assert [r["params"] for r in records(settings)] == [{"key": "after"}]


# -- listing --------------------------------------------------------------------------------


def test_list_audit_pages_newest_first_and_filters(
    writer: pykka.ActorRef[Any], reader: pykka.ActorRef[Any], settings: Settings
) -> None:
    for index in range(7):
        who = "alice" if index % 2 == 0 else "bob"
        method = "setting_set" if index < 5 else "setting_delete"
        if index == 5:
            writer.ask(cmd.SetSetting("k5", 5))
        command = cmd.SetSetting(f"k{index}", index) if index < 5 else cmd.DeleteSetting(f"k{index - 1}")
        call(writer, cmd.Audited(command, entry(method, who=who, key=f"k{index}"))).result(timeout=10)
    everything = records(settings)
    ids = [r["id"] for r in everything]

    first = reader.ask(cmd.ListAudit(limit=3))
    assert [r["id"] for r in first["items"]] == ids[::-1][:3]
    assert first["next"] == ids[-3]
    rest = reader.ask(cmd.ListAudit(limit=10, after=first["next"]))
    assert [r["id"] for r in rest["items"]] == ids[::-1][3:]
    assert rest["next"] is None
    item = first["items"][0]
    assert set(item) == {"id", "at", "who", "role", "method", "params", "outcome", "detail"}
    assert datetime.fromisoformat(item["at"]).utcoffset() == timedelta(0)

    by_bob = reader.ask(cmd.ListAudit(who="bob"))["items"]
    assert [r["params"]["key"] for r in by_bob] == ["k5", "k3", "k1"]
    deletes = reader.ask(cmd.ListAudit(method="setting_delete"))["items"]
    assert [r["params"]["key"] for r in deletes] == ["k6", "k5"]
    both = reader.ask(cmd.ListAudit(who="alice", method="setting_set", limit=1))
    assert [r["params"]["key"] for r in both["items"]] == ["k4"]
    assert [
        r["params"]["key"]
        for r in reader.ask(
            dataclasses.replace(cmd.ListAudit(who="alice", method="setting_set", limit=1), after=both["next"])
        )["items"]
    ] == ["k2"]
    middle = everything[3]["at"]
    since = reader.ask(cmd.ListAudit(since=middle))["items"]
    assert {r["id"] for r in since} == {r["id"] for r in everything if r["at"] >= middle}
    assert reader.ask(cmd.ListAudit(since=datetime.now(UTC) + timedelta(days=1)))["items"] == []


def test_audit_list_checks_its_arguments(settings: Settings) -> None:
    rpc = settings.rpc
    assert checks.audit_list("2026-01-31T12:00:00", rpc=rpc).since == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert checks.audit_list("2026-01-31T13:00:00+01:00", rpc=rpc).since == datetime(2026, 1, 31, 12, tzinfo=UTC)
    for bad, field in (
        ({"since": "yesterday"}, "since"),
        ({"since": 5}, "since"),
        ({"who": ""}, "who"),
        ({"method": "x\x00"}, "method"),
        ({"limit": 0}, "limit"),
        ({"limit": rpc.max_page_size + 1}, "limit"),
        ({"after": "x"}, "after"),
    ):
        with pytest.raises(checks.InvalidError) as raised:
            checks.audit_list(**bad, rpc=rpc)
        assert raised.value.field == field


# -- retention ------------------------------------------------------------------------------


class WallClock:
    """The wall clock the writer reads to age audit records; the test sets it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def start_pruning_writer(writers: Writers, settings: Settings, clock: FakeClock, wall: WallClock) -> Any:
    exits = ExitLog()
    writers.exits.append(exits)
    ref = DbWriter.start(
        ChildContext("db_writer", 1, exits), settings, Health(), clock=clock, check_interval_s=None, wall_clock=wall
    )
    writers.refs.append(ref)
    return ref


def audit_some(writer: Any, *keys: str) -> None:
    for key in keys:
        call(writer, cmd.Audited(cmd.SetSetting(key, 1), entry("setting_set", key=key))).result(timeout=10)


def test_records_past_keep_days_are_pruned_hourly(writers: Writers, settings: Settings) -> None:
    assert settings.audit.keep_days == 90
    clock, wall = FakeClock(), WallClock()
    writer = start_pruning_writer(writers, settings, clock, wall)
    audit_some(writer, "old")
    old_at = records(settings)[0]["at"]
    audit_some(writer, "new")
    writer.ask(CheckDatabase(), timeout=10)  # the first look prunes: nothing is that old
    assert len(records(settings)) == 2

    wall.now = old_at + timedelta(days=90, microseconds=1)  # "old" is past its 90 days, "new" is not
    writer.ask(CheckDatabase(), timeout=10)
    assert len(records(settings)) == 2  # not due yet: prunes are an hour apart
    clock.advance(db_writer.PRUNE_INTERVAL_S)
    writer.ask(CheckDatabase(), timeout=10)
    assert [r["params"]["key"] for r in records(settings)] == ["new"]
    assert writer.ask(cmd.GetSetting("old"))["value"] == 1  # the change stays; only its record ages out


def test_a_prune_removes_a_bounded_number_and_the_next_look_goes_on(
    writers: Writers, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_writer, "PRUNE_MOST", 2)
    clock, wall = FakeClock(), WallClock()
    writer = start_pruning_writer(writers, settings, clock, wall)
    audit_some(writer, *(f"k{index}" for index in range(5)))
    wall.now = datetime.now(UTC) + timedelta(days=91)

    left = []
    for _ in range(4):
        writer.ask(CheckDatabase(), timeout=10)  # no clock move: a full prune is due again at once
        left.append(len(records(settings)))
    assert left == [3, 1, 1, 1]  # the newest record stays, old as it is: it holds the ids' high-water mark
    audit_some(writer, "later")
    writer.ask(CheckDatabase(), timeout=10)  # a prune that was not full waits its hour
    assert [r["params"]["key"] for r in records(settings)] == ["k4", "later"]
    clock.advance(db_writer.PRUNE_INTERVAL_S)
    writer.ask(CheckDatabase(), timeout=10)
    assert [r["params"]["key"] for r in records(settings)] == ["later"]  # a newer one exists: the old one goes


def test_an_id_is_never_given_twice_even_once_every_record_was_old(writers: Writers, settings: Settings) -> None:
    clock, wall = FakeClock(), WallClock()
    writer = start_pruning_writer(writers, settings, clock, wall)
    audit_some(writer, "a", "b", "c")
    given = [r["id"] for r in records(settings)]
    wall.now = datetime.now(UTC) + timedelta(days=91)
    writer.ask(CheckDatabase(), timeout=10)
    audit_some(writer, "d")
    writers.stop_all()
    writer = start_pruning_writer(writers, settings, clock, wall)  # a new connection: SQLite's max(id) + 1
    audit_some(writer, "e")
    assert [r["id"] for r in records(settings)][-2:] == [given[-1] + 1, given[-1] + 2]


def test_keep_days_0_keeps_records_forever(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(db_url, tmp_path, NUA_AUDIT_KEEP_DAYS="0")
    writers = Writers(settings)
    try:
        clock, wall = FakeClock(), WallClock()
        writer = start_pruning_writer(writers, settings, clock, wall)
        audit_some(writer, "a")
        wall.now += timedelta(days=36500)
        clock.advance(10 * db_writer.PRUNE_INTERVAL_S)
        writer.ask(CheckDatabase(), timeout=10)
        assert len(records(settings)) == 1
    finally:
        writers.stop_all()


# -- the schema -----------------------------------------------------------------------------


def test_an_existing_database_gets_an_empty_audit_table_at_start(writers: Writers, settings: Settings) -> None:
    first = writers.start()
    first.ask(cmd.SetSetting("kept", 1))
    first.stop(block=True, timeout=10)
    engine = db_engine.create(settings.db)
    try:
        with engine.begin() as conn:  # as a nua from before the audit trail left it
            audit_table.drop(conn)
    finally:
        engine.dispose()

    second = writers.start()
    assert second.ask(cmd.GetSetting("kept"))["value"] == 1
    audit_some(second, "after")
    assert [r["params"] for r in records(settings)] == [{"key": "after"}]
    engine = sa.create_engine(settings.db.url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            indexed = {tuple(index["column_names"]) for index in sa.inspect(conn).get_indexes("audit")}
    finally:
        engine.dispose()
    assert version == str(schema.SCHEMA_VERSION)
    assert indexed == set()  # ``at`` is found through the id: no index written at every commit


def version_1_audit_table() -> sa.Table:
    """The audit table as schema version 1 made it: an index on ``at``, AUTOINCREMENT on SQLite."""
    return sa.Table(
        "audit",
        sa.MetaData(),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
        *(
            sa.Column(name, sa.Text, nullable=False)
            for name in ("who", "role", "method", "params", "outcome", "detail")
        ),
        sqlite_autoincrement=True,
    )


def make_version_1(settings: Settings, rows: int, *, then_delete: int = 0) -> None:
    """A database as nua with schema version 1 left it: ``rows`` records, the last ``then_delete`` of them removed."""
    engine = db_engine.create(settings.db)
    old = version_1_audit_table()
    try:
        with engine.begin() as conn:
            schema.ensure_schema(conn)
            audit_table.drop(conn)
            old.create(conn)
            at = datetime(2026, 1, 1, tzinfo=UTC)
            for index in range(rows):
                conn.execute(
                    old.insert().values(
                        at=at + timedelta(minutes=index),
                        who="alice",
                        role="admin",
                        method="setting_set",
                        params=json.dumps({"key": f"v1.{index}"}),
                        outcome="ok",
                        detail="",
                    )
                )
            if then_delete:
                conn.execute(old.delete().where(old.c.id > rows - then_delete))
            conn.execute(meta.update().where(meta.c.key == "schema_version").values(value="1"))
    finally:
        engine.dispose()


def audit_schema(settings: Settings) -> tuple[str, set[tuple[str, ...]]]:
    """The version recorded, and the audit table's indexes."""
    engine = sa.create_engine(settings.db.url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar_one()
            return version, {tuple(index["column_names"]) for index in sa.inspect(conn).get_indexes("audit")}
    finally:
        engine.dispose()


def test_a_version_1_database_is_upgraded_with_its_records_and_their_ids(
    writers: Writers, settings: Settings, backend: str
) -> None:
    make_version_1(settings, 5)
    before = records(settings)

    writer = writers.start()
    audit_some(writer, "after")

    assert audit_schema(settings) == (str(schema.SCHEMA_VERSION), set())
    after = records(settings)
    assert after[:5] == before
    assert after[5]["id"] == before[-1]["id"] + 1
    if backend == "sqlite":
        engine = sa.create_engine(settings.db.url)
        try:
            with engine.connect() as conn:
                ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'audit'").scalar_one()
        finally:
            engine.dispose()
        assert "AUTOINCREMENT" not in ddl


def test_ids_version_1_gave_to_records_since_removed_are_not_given_again(
    writers: Writers, settings: Settings, backend: str
) -> None:
    make_version_1(settings, 4, then_delete=4)  # version 1's retention could remove every record

    writer = writers.start()
    audit_some(writer, "after")

    found = records(settings)
    if backend == "sqlite":  # SQLite would start from 1 again: the upgrade's own record holds the mark
        assert [(r["id"], r["method"]) for r in found] == [(5, "schema_upgrade"), (6, "setting_set")]
    else:  # a sequence never goes back
        assert [(r["id"], r["method"]) for r in found] == [(5, "setting_set")]


def test_a_record_is_never_earlier_than_the_one_before(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # at grows with the id even when the clock goes back (the id is how a time is found).
    later, earlier = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)
    engine = db_engine.create(settings.db)
    try:
        with engine.begin() as conn:
            schema.ensure_schema(conn)
            monkeypatch.setattr(operations, "utcnow", lambda: later)
            operations.record_all(conn, [(ALICE, "ok", "")])
            monkeypatch.setattr(operations, "utcnow", lambda: earlier)
            operations.record_all(conn, [(ALICE, "ok", "")])
        engine.dispose()
        engine = db_engine.create(settings.db)
        with engine.begin() as conn:  # a new connection reads the newest time from the table
            operations.record_all(conn, [(ALICE, "ok", "")])
            monkeypatch.setattr(operations, "utcnow", lambda: later + timedelta(days=1))
            operations.record_all(conn, [(ALICE, "ok", "")])
    finally:
        engine.dispose()
    assert [r["at"] for r in records(settings)] == [later, later, later, later + timedelta(days=1)]


def test_one_batch_of_many_records_keeps_their_order_outcomes_and_one_time(settings: Settings) -> None:
    # More records than one statement holds on SQLite (100), denied ones among the ok ones
    # (their outcome and detail bound, the others' written as literals): all in order.
    batch: list[operations.Record] = []
    for index in range(250):
        recorded = entry("setting_set", who=f"w{index}", key=f"k{index}")
        batch.append((recorded, "denied", "needs role admin") if index % 7 == 3 else (recorded, "ok", ""))
    engine = db_engine.create(settings.db)
    try:
        with engine.begin() as conn, transaction_time():
            schema.ensure_schema(conn)
            operations.record_all(conn, batch[:1])
            operations.record_all(conn, batch[1:])
    finally:
        engine.dispose()
    found = records(settings)
    assert [(r["who"], r["role"], r["method"], r["params"], r["outcome"], r["detail"]) for r in found] == [
        (e.who, e.role, e.method, e.params, outcome, detail) for e, outcome, detail in batch
    ]
    assert [r["id"] for r in found] == sorted(r["id"] for r in found)
    assert len({r["at"] for r in found}) == 1


def test_since_finds_its_first_record_through_the_ids_with_gaps_between_them(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    engine = db_engine.create(settings.db)
    try:
        with engine.begin() as conn:
            schema.ensure_schema(conn)
            for index in range(40):
                stamp = start + timedelta(minutes=index // 3)  # three records a minute, as in one batch
                monkeypatch.setattr(operations, "utcnow", lambda stamp=stamp: stamp)
                operations.record_all(conn, [(ALICE, "ok", "")])
            conn.execute(sa.delete(audit_table).where(audit_table.c.id.in_([2, 3, 4, 17, 18, 30])))
        with engine.connect() as conn:
            kept = conn.execute(sa.select(audit_table.c.id, audit_table.c.at)).all()
            for minutes in range(-1, 16):
                since = start + timedelta(minutes=minutes, seconds=30 if minutes % 2 else 0)
                listed = operations.list_audit(conn, cmd.ListAudit(since=since, limit=100))["items"]
                assert [r["id"] for r in listed] == sorted((i for i, at in kept if at >= since), reverse=True)
    finally:
        engine.dispose()


# -- redaction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("new_password", True),
        ("passwd", True),
        ("password_hash", True),
        ("secret", True),
        ("secret_key", True),
        ("secretKey", True),
        ("client_secret", True),
        ("api_key", True),
        ("APIKey", True),
        ("access-token", True),
        ("refresh_token", True),
        ("credentials", True),
        ("private_key", True),
        ("Authorization", True),
        ("smtp_pass", True),
        ("mail.pass", True),
        ("ldap.bind_pw", True),
        ("privkey", True),
        ("sshkey", True),
        ("compass", False),
        ("key", False),  # a setting's key
        ("public_key", False),  # a CURVE public key is no secret
        ("server_key", False),
        ("username", False),
        ("email", False),
        ("keep_days", False),
        ("monkey", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert secret_name(name) is secret
    assert secret_name(name) is secret  # the remembered answer too


def test_redaction_reaches_every_nested_secret() -> None:
    params = {
        "user_data": {"username": "u", "password": "pw1", "profile": [{"token": "t1"}, {"nested": {"secret": "s1"}}]},
        "items": [{"key": "smtp.password", "value": "pw2"}, {"key": "site.name", "value": "shown"}],
        "key": "db.token",
        "value": {"any": "pw3"},
        "url": "postgresql+psycopg://nua:pw4@db.example/nua?sslpassword=pw5",
        "public_key": "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
    }
    redacted = redact(params)
    text = json.dumps(redacted)
    for secret in ("pw1", "t1", "s1", "pw2", "pw3", "pw4", "pw5"):
        assert secret not in text
    assert redacted["user_data"]["password"] == REDACTED
    assert redacted["user_data"]["profile"][1]["nested"]["secret"] == REDACTED
    assert redacted["items"] == [{"key": "smtp.password", "value": REDACTED}, {"key": "site.name", "value": "shown"}]
    assert redacted["value"] == REDACTED
    assert redacted["url"].startswith("postgresql+psycopg://nua:***@db.example/nua")
    assert redacted["public_key"] == params["public_key"]
    assert redacted["user_data"]["username"] == "u"
    # Any of key/name/field naming a secret hides the value beside it, not only the first one present.
    assert redact({"name": "db", "field": "password", "value": "pw6"})["value"] == REDACTED


def test_redaction_bounds_what_it_keeps() -> None:
    long_text = "x" * 10_000
    params = {"text": long_text, "ids": list(range(1000)), "deep": _nested(100), "bad": "\ud800"}
    assert len(redacted_json(params)) <= PARAMS_MAX_BYTES
    redacted = redact(params)
    assert redacted["text"].startswith("x" * STRING_MAX)
    assert redacted["text"].endswith(f"[{10_000 - STRING_MAX} more characters]")
    assert redacted["ids"][-1] == "[950 more items]"
    assert "[nested too deep]" in json.dumps(redacted)
    json.dumps(redacted).encode("utf-8")  # storable: no lone surrogate left

    many = {f"k{index}": '"é\n' * 80 for index in range(40)}  # each part within bounds, the whole not
    assert len(redacted_json(many)) <= PARAMS_MAX_BYTES
    assert redacted_json(many).isascii()
    huge = redact(many)
    assert set(huge) == {"truncated"}
    assert huge["truncated"].endswith("more characters]")


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"down": value}
    return value


@pytest.mark.parametrize(
    "params",
    [
        {"key": "site.name", "value": "shown", "n": 1, "f": 1.5, "b": True, "z": None},
        {"key": "mail.token", "value": "pw"},
        {"name": "x", "field": "password", "value": "pw"},
        {"password": "pw", "username": "u"},
        {"url": "postgresql://nua:pw@db/nua"},
        {"text": "x" * 1000},
        {"bad": "\ud800", "accent": "é"},
        {1: "a", "b": 2},
        {f"k{index}": index for index in range(60)},
        {"quote": 'a"b\\c\n'},
    ],
)
def test_flat_params_are_redacted_as_the_same_params_nested(params: dict[Any, Any]) -> None:
    # A call's usual params (a flat object) take a shorter path: it must keep and hide the same.
    nested = redact({"params": params})["params"]
    assert redact(params) == nested
    assert "pw" not in redacted_json(params)


@pytest.mark.parametrize(
    ("names", "values"),
    [
        (("key", "value"), ("site.name", "shown")),
        (("key", "value"), ("smtp.password", "pw")),
        (("password", "username"), ("pw", "u")),
        (("user_id", "field", "value"), (1, "password", "pw")),
        (("url",), ("postgresql://nua:pw@db/nua",)),
        (("n", "f", "b", "z"), (1, float("nan"), True, None)),
        (("data",), ({"token": "pw"},)),
    ],
)
def test_named_params_are_recorded_as_the_same_params_by_name(names: tuple[str, ...], values: tuple[Any, ...]) -> None:
    # A call's positional params take a path without their dict; what a name gives is remembered: twice each.
    for _ in range(2):
        named = AuditEntry.of_named("alice", "admin", "m", names, values)
        assert named == AuditEntry.of("alice", "admin", "m", dict(zip(names, values, strict=True)))
        assert "pw" not in named.params_json
