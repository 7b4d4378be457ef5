"""Logs: JSON lines in the file, bound actor ids, libraries' records routed in, each failure logged once."""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from nua import log
from nua.actors.log_thread import MOST_AT_ONCE, LogThread
from nua.actors.messages import Crash, Exited
from nua.actors.supervised import ChildContext, SupervisedActor


def records(path: Path) -> list[dict[str, Any]]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_structlog_lines_are_json_with_their_bound_fields(log_file: Path) -> None:
    log.get("nua.test", actor="gateway").info("bound", clients=3)
    (record,) = records(log_file)
    assert record["event"] == "bound"
    assert record["actor"] == "gateway"
    assert record["clients"] == 3
    assert record["level"] == "info"
    assert "timestamp" in record


def test_an_actor_dying_in_a_tell_is_logged_with_its_id(log_file: Path) -> None:
    exits: list[Exited] = []
    ref = SupervisedActor.start(ChildContext("worker", 1, exits.append))
    ref.tell(Crash("boom"))
    ref.stop(block=True, timeout=5)  # answered by the dead actor's teardown, after its exit report
    (failure,) = [r for r in records(log_file) if r["event"] == "actor_failed"]
    assert failure["actor"] == "worker"
    assert failure["error"] == "InjectedFaultError: boom"
    assert "Traceback" in failure["exception"]
    assert exits == [Exited("worker", 1, "InjectedFaultError: boom")]


def test_a_librarys_own_records_are_routed_to_the_file(log_file: Path) -> None:
    logging.getLogger("sqlalchemy.pool").warning("pool overflow")
    (record,) = records(log_file)
    assert record["logger"] == "sqlalchemy.pool"
    assert record["event"] == "pool overflow"
    assert record["level"] == "warning"


def test_an_actor_failure_is_logged_once_not_again_by_pykka(log_file: Path) -> None:
    ref = SupervisedActor.start(ChildContext("worker", 1, lambda _exited: None))
    ref.tell(Crash("once"))
    ref.stop(block=True, timeout=5)
    with_traceback = [r for r in records(log_file) if "exception" in r]
    assert [(r["logger"], r["event"]) for r in with_traceback] == [("nua.actors.worker", "actor_failed")]


def test_set_level_filters_at_once(log_file: Path) -> None:
    log.set_level("warning")
    log.get("nua.test").info("hidden")
    log.get("nua.test").warning("shown")
    assert [r["event"] for r in records(log_file)] == ["shown"]


def test_lines_written_together_read_as_lines_logged_one_by_one(log_file: Path) -> None:
    logger = log.get("nua.test", actor="db_writer")
    logger.info("rpc_call", who="alice", role="admin", method="setting_set", outcome="ok")
    log.write_lines(
        logger,
        [
            ("info", "rpc_call", {"who": "alice", "role": "admin", "method": "setting_set", "outcome": "ok"}),
            ("debug", "hidden", {}),
            ("warning", "rpc_denied", {"who": "bob", "needed": "admin", "recorded": True}),
        ],
    )
    one_by_one, together, denied = records(log_file)
    assert list(one_by_one) == list(together)  # the same keys, in the same order
    assert {k: v for k, v in one_by_one.items() if k != "timestamp"} == {
        k: v for k, v in together.items() if k != "timestamp"
    }
    assert denied == denied | {"event": "rpc_denied", "level": "warning", "actor": "db_writer", "needed": "admin"}


def test_lines_written_together_follow_the_level(log_file: Path) -> None:
    log.set_level("warning")
    logger = log.get("nua.test")
    log.write_lines(logger, [("info", "hidden", {}), ("warning", "shown", {"n": 1})])
    assert [(r["event"], r.get("n")) for r in records(log_file)] == [("shown", 1)]


def test_a_json_line_begins_with_timestamp_level_and_event(log_file: Path) -> None:
    log.get("nua.test", actor="gateway").warning("ordered", clients=3)
    logging.getLogger("sqlalchemy.pool").error("routed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert [list(json.loads(line))[:3] for line in lines] == [["timestamp", "level", "event"]] * 2
    assert lines[0].startswith('{"timestamp": "')
    assert '"level": "warning", "event": "ordered"' in lines[0]


def test_a_log_thread_writes_every_line_in_order_by_its_stop(log_file: Path) -> None:
    lines = LogThread(log.get("nua.test"), "test-log")
    count = MOST_AT_ONCE * 2 + 3  # more than one write's worth
    for n in range(count):
        (lines.info if n % 2 else lines.warning)("line", n=n)
        if n % 100 == 99:
            lines.flush()  # handed over in parts, as an actor does at the end of its steps
    lines.stop()
    written = records(log_file)
    assert [r["n"] for r in written] == list(range(count))
    assert [r["level"] for r in written[:2]] == ["warning", "info"]


def test_a_log_thread_leaves_out_lines_below_the_level(log_file: Path) -> None:
    log.set_level("warning")
    lines = LogThread(log.get("nua.test"), "test-log")
    lines.info("hidden")
    lines.warning("shown")
    lines.stop()
    assert [r["event"] for r in records(log_file)] == ["shown"]


def test_early_lines_wait_for_configure_then_are_written_with_their_own_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "early.log"
    monkeypatch.setattr(log, "_early_lines", log._EarlyLines())  # a process that has configured nothing yet
    try:
        early = log.early("nua.daemon", pid=7)
        early.info("daemon_starting", endpoint="ipc:///x")
        early.debug("below_the_level")
        try:
            raise RuntimeError("boom")  # noqa: TRY301 - a failure to log with its traceback
        except RuntimeError:
            early.bind(step="listen").exception("start_failed")
        assert not path.exists()  # nothing written before the logs are configured
        log.configure("info", log_file=path)
        first, second = records(path)
        assert (first["event"], first["pid"], first["endpoint"], first["logger"]) == (
            "daemon_starting",
            7,
            "ipc:///x",
            "nua.daemon",
        )
        assert (second["event"], second["level"], second["step"]) == ("start_failed", "error", "listen")
        assert second["exception"].startswith("Traceback")
        assert second["exception"].endswith("RuntimeError: boom")
        assert datetime.fromisoformat(first["timestamp"]) <= datetime.fromisoformat(second["timestamp"])
        # Once configured, an early logger writes at once.
        early.warning("late")
        assert [r["event"] for r in records(path)][-1] == "late"
    finally:
        log.configure("info")


def test_early_lines_past_the_bound_are_counted_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "early.log"
    monkeypatch.setattr(log, "_early_lines", log._EarlyLines())  # see above
    try:
        early = log.early("nua.daemon")
        for index in range(log.EARLY_MAX + 5):
            early.info("line", index=index)
        log.configure("info", log_file=path)
        written = records(path)
        assert len(written) == log.EARLY_MAX + 1
        assert written[-1]["event"] == "early_lines_dropped"
        assert written[-1]["count"] == 5
    finally:
        log.configure("info")


class _Structlogged:
    """A value that says how structlog's JSON renderer writes it (``__structlog__``)."""

    def __structlog__(self) -> str:
        return "structlogged ✓"


class _Opaque:
    """A value JSON cannot write: the renderer writes its repr."""

    def __repr__(self) -> str:
        return "<opaque ünïcode \u2028>"


def _variety() -> list[log.Line]:
    """Lines of every kind of value and key the JSON file may get, for rendering both ways."""
    when = datetime(2026, 11, 28, 18, 0, 0, 123456, tzinfo=UTC)
    call = {"who": "alice", "role": "admin", "method": "setting_set", "outcome": "ok", "duration_ms": 0.5}
    return [
        ("info", "rpc_call", call),
        ("info", "empty", {}),
        ("debug", "below_the_level", {"n": 1}),
        ("warning", "rpc_denied", {"who": "bob", "needed": "admin", "recorded": True}),
        ("error", "numbers", {"i": -(2**70), "f": 1e-7, "big": 1e300, "zero": 0.0, "nan": math.nan, "inf": -math.inf}),
        ("info", "unicode é 日本 🙂", {"text": 'quote " \\ nl \n tab \t nul \x00 \u2028 🙂', "ключ": "значение"}),
        ("info", "nested", {"list": [1, "two", None], "tuple": (1, 2), "dict": {"a": {"b": [True]}, 1: "int key"}}),
        ("info", "not_json", {"when": when, "path": Path("/srv/x"), "bytes": b"\xff", "set": {3}, "obj": _Opaque()}),
        ("info", "structlog_hook", {"value": _Structlogged(), "in_list": [_Structlogged()]}),
        ("info", "shadows", {"actor": "fields_win", "level": "fake", "timestamp": "0", "logger": "fake", "event": "x"}),
        ("warning", "exception_text", {"exception": "Traceback (most recent call last):\n  boom"}),
        ("error", "with_exc_info", {"exc_info": (ValueError, ValueError("bad"), None)}),
        ("info", "with_record", {"_record": None, "n": 2}),
        ("info", "last", {"z": 1, "a": 2, "m": 3}),
    ]


@pytest.mark.parametrize(
    "context_locals",
    [
        {"request": "r-1", "actor": "contextvar", "level": "cv"},
        # Keys the chain treats apart, bound in the thread's context rather than given with a line.
        {"request": "r-1", "exc_info": True},
        {"request": "r-1", "_record": None},
    ],
)
def test_the_json_fast_path_writes_what_the_processors_write_byte_for_byte(
    log_file: Path, monkeypatch: pytest.MonkeyPatch, context_locals: dict[str, Any]
) -> None:
    """write_lines builds a JSON file's lines without running the processors: the bytes must be theirs."""
    output = log._output
    assert output is not None
    assert output.encode is not None  # the file's chain is the one the fast path knows
    logger = log.get("nua.test", actor="context", n=0, unicode="ü")
    structlog.contextvars.bind_contextvars(**context_locals)
    try:
        log.write_lines(logger, _variety(), at=1_800_000_000.25)
        fast = log_file.read_bytes()
        monkeypatch.setattr(log, "_output", output._replace(encode=None))  # every line through the processors
        log.write_lines(logger, _variety(), at=1_800_000_000.25)
    finally:
        structlog.contextvars.clear_contextvars()
    both = log_file.read_bytes()
    assert both == fast + fast
    lines = [json.loads(line) for line in fast.decode().splitlines()]
    assert [line["event"] for line in lines][:3] == ["rpc_call", "empty", "rpc_denied"]
    if "_record" in context_locals:
        return  # the chain writes a bound _record as it is: the bytes above are what matters
    assert lines[0] == {
        "timestamp": "2027-01-15T08:00:00.250000Z",
        "level": "info",
        "event": "rpc_call",
        "actor": "context",
        "n": 0,
        "unicode": "ü",
        "who": "alice",
        "role": "admin",
        "method": "setting_set",
        "outcome": "ok",
        "duration_ms": 0.5,
        "request": "r-1",
        "logger": "nua.test",
    }


def test_the_json_fast_path_is_taken_for_the_files_chain_only(tmp_path: Path) -> None:
    structlog = log._structlog()
    json_renderer = structlog.processors.JSONRenderer()
    unstamped = log._shared()[:-1]
    render = (structlog.processors.format_exc_info, log.first_keys_first)
    assert log._json_encode(unstamped, (*render, json_renderer)) is not None
    sorted_renderer = structlog.processors.JSONRenderer(sort_keys=True, ensure_ascii=False)
    encode = log._json_encode(unstamped, (*render, sorted_renderer))
    assert encode is not None
    event = {"b": "é", "a": _Opaque()}
    assert encode(event) == sorted_renderer(None, "info", event)
    assert log._json_encode(unstamped, (*render, structlog.processors.JSONRenderer(cls=json.JSONEncoder))) is None
    assert log._json_encode(unstamped, (*render, structlog.processors.JSONRenderer(serializer=repr))) is None
    assert log._json_encode(unstamped, (render[0], json_renderer)) is None
    assert log._json_encode(unstamped[:2], (*render, json_renderer)) is None
    log.configure("info")  # the console's renderer
    console = log._output
    assert console is not None
    assert console.encode is None
    log.configure("info", log_file=tmp_path / "nua.log")
    in_file = log._output
    assert in_file is not None
    assert in_file.encode is not None
    log.configure("info")


@pytest.mark.parametrize(
    "ns",
    [
        0,
        999,
        1_000,
        999_999_999,
        1_000_000_000,
        1_800_000_000_000_000_000,
        1_800_000_000_123_456_789,
        1_799_999_999_999_999_999,
    ],
)
def test_the_time_of_a_line_is_datetime_nows_to_the_microsecond(ns: int) -> None:
    expected = (
        (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)).isoformat().replace("+00:00", "Z")
    )
    assert log._now_stamp(ns) == expected
    assert log._now_stamp(ns + 1_000) == log._now_stamp(ns + 1_000)  # the second's text kept, then used


def test_the_time_of_a_line_now_reads_as_datetime_now() -> None:
    before = datetime.now(UTC)
    stamp = log._timestamp()
    after = datetime.now(UTC)
    assert before <= datetime.fromisoformat(stamp) <= after
