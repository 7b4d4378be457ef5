"""The dispatcher's ``rpc_call`` line: one per call of a state-changing method, once answered, whatever the outcome."""

from __future__ import annotations

import concurrent.futures
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rpc_helpers import make_settings

from nua.actors.directory import Directory
from nua.roles import Role
from nua.rpc import errors
from nua.rpc.access import Caller
from nua.rpc.call_log import CallLog
from nua.rpc.dispatch import Dispatcher
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import Services

SECRET = "s3cret-value"  # noqa: S105 - what no line may hold


ALICE = Caller("alice", Role.OPERATOR)


class Lines:
    """Collects the lines as a LogThread would write them."""

    def __init__(self, *, level_info: bool = True) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []
        self.level_info = level_info

    def info(self, event: str, **fields: Any) -> None:
        if self.level_info:
            self.lines.append((event, fields))

    def writes_info(self) -> bool:
        return self.level_info


class LoggedMethods(MethodGroup):
    prefix = "logged_"

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.pending: concurrent.futures.Future[Any] = concurrent.futures.Future()

    @public(role="reader", changes=True)
    def set(self, key: str, value: Any) -> str:
        if key == "missing":
            raise errors.NotFoundError(f"no key {key!r} holding {value!r}", {"entity": "setting", "key": key})
        return "set"

    @public(role="reader", changes=True)
    def later(self) -> concurrent.futures.Future[Any]:
        return self.pending

    @public(role="reader")
    def read(self) -> int:
        return 1

    @public(role="admin", changes=True)
    def admin_only(self) -> int:
        return 1


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        services = Services(make_settings(tmp_path), Directory())
        self.methods = LoggedMethods(services)
        services.registry.add_group(self.methods)
        self.now = [10.0]
        self.woken = threading.Event()
        self.lines = Lines()
        self.pool = concurrent.futures.ThreadPoolExecutor(1)
        self.dispatcher = Dispatcher(
            services.registry,
            executor=self.pool,
            wakeup=self.woken.set,
            max_in_flight=4,
            call_timeout_s=5.0,
            clock=lambda: self.now[0],
            call_log=CallLog(self.lines, clock=lambda: self.now[0]),
        )
        self.sent: list[Any] = []

    def call(self, method: str, params: Any, caller: Caller = ALICE) -> None:
        request = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
        self.dispatcher.handle(json.dumps(request).encode(), lambda r: self.sent.append(json.loads(r)), b"c", caller)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    made = Harness(tmp_path)
    yield made
    made.pool.shutdown(wait=True)


def test_a_changing_call_answered_at_once_has_one_line_with_who_method_outcome(harness: Harness) -> None:
    harness.call("logged_set", ["site.name", SECRET])
    assert harness.sent[-1]["result"] == "set"
    assert harness.lines.lines == [
        (
            "rpc_call",
            {"who": "alice", "role": "operator", "method": "logged_set", "outcome": "ok", "duration_ms": 0.0},
        )
    ]


def test_a_failed_call_names_its_error_and_never_the_params_or_message(harness: Harness) -> None:
    harness.call("logged_set", ["missing", SECRET])
    harness.call("logged_set", {"key": "k", "nope": SECRET})
    (event, failed), (_, invalid) = harness.lines.lines
    assert event == "rpc_call"
    assert (failed["outcome"], failed["code"], failed["error"], failed["entity"]) == (
        "error", errors.NOT_FOUND, "not_found", "setting",
    )  # fmt: skip
    assert (invalid["outcome"], invalid["code"]) == ("error", errors.INVALID_PARAMS)
    assert SECRET not in repr(harness.lines.lines)
    assert SECRET in json.dumps(harness.sent[0])  # the reply's message did quote it: the line does not


def test_a_waiting_call_is_logged_when_answered_with_its_duration(harness: Harness) -> None:
    harness.call("logged_later", [])
    assert harness.lines.lines == []  # not answered yet
    harness.now[0] = 10.25
    harness.methods.pending.set_result("done")
    assert harness.woken.wait(5)
    harness.dispatcher.process_completions()
    ((_, line),) = harness.lines.lines
    assert (line["outcome"], line["duration_ms"]) == ("ok", 250.0)


def test_a_call_past_its_deadline_is_logged_as_a_timeout(harness: Harness) -> None:
    harness.call("logged_later", [])
    harness.now[0] = 16.0
    assert harness.dispatcher.expire() is None
    ((_, line),) = harness.lines.lines
    assert (line["outcome"], line["code"], line["duration_ms"]) == ("timeout", errors.TIMEOUT, 6000.0)


def test_reads_and_denied_calls_have_no_rpc_call_line(harness: Harness) -> None:
    harness.call("logged_read", [])
    harness.call("logged_admin_only", [])  # denied: its own rpc_denied line, with its audit record
    harness.call("logged_nosuch", [])
    assert harness.sent[1]["error"]["code"] == errors.FORBIDDEN
    assert harness.lines.lines == []


def test_below_info_a_changing_call_is_neither_timed_nor_logged(harness: Harness) -> None:
    harness.lines.level_info = False
    harness.call("logged_set", ["site.name", SECRET])
    assert harness.sent[-1]["result"] == "set"
    assert harness.lines.lines == []
    reads: list[float] = []
    quiet = CallLog(Lines(level_info=False), clock=lambda: reads.append(1.0) or 0.0)
    assert quiet.begin("alice", "operator", "logged_set") is None
    assert reads == []


def test_a_log_threads_line_is_kept_as_made_without_a_second_look_at_the_level(tmp_path: Path) -> None:
    """CallLog hands a LogThread its tuple (LogThread.add): the level was looked at when the call began."""
    from nua import log  # noqa: PLC0415 - the log file of this test only
    from nua.actors.log_thread import LogThread  # noqa: PLC0415

    path = tmp_path / "nua.log"
    log.configure("info", log_file=path)
    try:
        lines = LogThread(log.get("nua.rpc.gateway"), "test-log")
        now = [1.0]
        calls = CallLog(lines, clock=lambda: now[0])
        started = calls.begin("alice", "operator", "logged_set")
        assert started is not None
        now[0] = 1.5
        calls.answered(started)
        calls.answered(started, errors.NotFoundError("gone", {"entity": "setting", "key": SECRET}))
        lines.stop()
        written = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    finally:
        log.configure("info")
    assert [{k: v for k, v in line.items() if k != "timestamp"} for line in written] == [
        {"level": "info", "event": "rpc_call", "who": "alice", "role": "operator", "method": "logged_set",
         "outcome": "ok", "duration_ms": 500.0, "logger": "nua.rpc.gateway"},
        {"level": "info", "event": "rpc_call", "who": "alice", "role": "operator", "method": "logged_set",
         "outcome": "error", "duration_ms": 500.0, "code": errors.NOT_FOUND, "error": "not_found",
         "entity": "setting", "logger": "nua.rpc.gateway"},
    ]  # fmt: skip
