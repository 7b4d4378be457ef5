"""The dispatcher talking to a fake owner actor directly (ask/tell, no ZeroMQ)."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rpc_helpers import make_settings

from nua.actors.directory import Directory
from nua.actors.supervised import ChildContext, SupervisedActor
from nua.rpc import errors
from nua.rpc.dispatch import MAX_SYSTEM_CALLS_PER_CLIENT, Dispatcher
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import Services


@dataclass(frozen=True)
class Double:
    value: int


@dataclass(frozen=True)
class Hold:
    """Answered only once the test sets the gate."""

    gate: threading.Event


class Owner(SupervisedActor):
    """A fake owner of methods, answering in its own thread."""

    def on_receive(self, message: Any) -> Any:
        match message:
            case Double(value):
                DOUBLED.append(value)
                return {"doubled": value * 2}
            case Hold(gate):
                gate.wait(10)
                return "held"
            case _:
                return super().on_receive(message)


class OwnerMethods(MethodGroup):
    prefix = "owner_"

    @public(role="reader")
    def double(self, value: int) -> concurrent.futures.Future[Any]:
        return self.services.ask("owner", Double(value))

    @public(role="reader")
    def hold(self) -> concurrent.futures.Future[Any]:
        return self.services.ask("owner", Hold(GATE))

    @public(offload=True, role="reader")
    def offloaded(self, value: int) -> concurrent.futures.Future[Any]:
        return self.services.ask("owner", Double(value))


GATE = threading.Event()
# Every value the owner was asked to double: what reached it.
DOUBLED: list[int] = []


class Harness:
    """Runs the dispatcher in the test thread, as the I/O thread would."""

    def __init__(self, dispatcher: Dispatcher, woken: threading.Event) -> None:
        self.dispatcher = dispatcher
        self.woken = woken
        self.sent: list[Any] = []

    def handle(self, request: Any, client: bytes = b"") -> None:
        self.dispatcher.handle(json.dumps(request).encode(), lambda reply: self.sent.append(json.loads(reply)), client)

    def wait_reply(self) -> Any:
        while not self.sent:
            assert self.woken.wait(5), "no completion woke the dispatcher"
            self.woken.clear()
            self.dispatcher.process_completions()
        return self.sent.pop(0)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    GATE.clear()
    directory = Directory()
    owner = Owner.start(ChildContext("owner", 1, lambda _exited: None))
    directory.register("owner", owner)
    services = Services(make_settings(tmp_path), directory)
    services.registry.add_group(OwnerMethods(services))
    woken = threading.Event()
    now = [0.0]
    pool = concurrent.futures.ThreadPoolExecutor(2)
    dispatcher = Dispatcher(
        services.registry,
        executor=pool,
        wakeup=woken.set,
        max_in_flight=2,
        max_batch=50,
        call_timeout_s=5.0,
        clock=lambda: now[0],
    )
    harness = Harness(dispatcher, woken)
    harness.now = now  # type: ignore[attr-defined]
    harness.directory = directory  # type: ignore[attr-defined]
    harness.services = services  # type: ignore[attr-defined]
    yield harness
    GATE.set()
    pool.shutdown(wait=True)
    owner.stop()


def _request(method: str, params: list[Any], request_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}


def test_reply_when_the_owner_answers(harness: Harness) -> None:
    harness.handle(_request("owner_double", [21]))
    assert harness.wait_reply() == {"jsonrpc": "2.0", "id": 1, "result": {"doubled": 42}}
    assert harness.dispatcher.in_flight == 0


def test_offloaded_method_chains_into_the_owner(harness: Harness) -> None:
    harness.handle(_request("owner_offloaded", [5]))
    assert harness.wait_reply()["result"] == {"doubled": 10}


def test_a_held_call_does_not_block_others(harness: Harness) -> None:
    harness.handle(_request("owner_hold", [], "held"))
    assert harness.sent == []
    assert harness.dispatcher.in_flight == 1
    GATE.set()
    assert harness.wait_reply() == {"jsonrpc": "2.0", "id": "held", "result": "held"}


def test_timeout_and_late_result_dropped(harness: Harness) -> None:
    harness.handle(_request("owner_hold", [], "slow"))
    harness.now[0] = 4.0  # type: ignore[attr-defined]
    assert harness.dispatcher.expire() == pytest.approx(1.0)
    harness.now[0] = 5.5  # type: ignore[attr-defined]
    assert harness.dispatcher.expire() is None
    reply = harness.sent.pop()
    assert reply["error"]["code"] == errors.TIMEOUT
    GATE.set()
    harness.handle(_request("owner_double", [1], "next"))
    assert harness.wait_reply()["id"] == "next"  # the held call's late result was dropped
    assert harness.sent == []


def test_busy_past_the_bound(harness: Harness) -> None:
    harness.handle(_request("owner_hold", [], 1))
    harness.handle(_request("owner_hold", [], 2))
    harness.handle(_request("owner_double", [1], 3))
    assert harness.sent.pop()["error"]["code"] == errors.BUSY
    GATE.set()
    assert {harness.wait_reply()["id"], harness.wait_reply()["id"]} == {1, 2}


def test_owner_gone_is_unavailable_not_a_hang(harness: Harness) -> None:
    owner = harness.directory.lookup("owner")  # type: ignore[attr-defined]
    owner.stop()
    harness.handle(_request("owner_double", [1]))
    assert harness.wait_reply()["error"]["code"] == errors.UNAVAILABLE
    harness.directory.unregister("owner", owner)  # type: ignore[attr-defined]
    harness.handle(_request("owner_double", [1]))
    assert harness.sent.pop()["error"]["data"] == {"actor": "owner"}


def test_batch_waits_for_all_members_and_keeps_order(harness: Harness) -> None:
    harness.handle(
        [
            _request("owner_hold", [], "a"),
            _request("owner_double", [2], "b"),
            {"jsonrpc": "2.0", "method": "owner_double", "params": [3]},
        ]
    )
    GATE.set()
    reply = harness.wait_reply()
    assert [item["id"] for item in reply] == ["a", "b"]
    assert reply[1]["result"] == {"doubled": 4}


def test_abort_all_answers_waiting_calls(harness: Harness) -> None:
    harness.handle(_request("owner_hold", [], "w"))
    assert harness.dispatcher.abort_all(errors.UnavailableError("stopping")) == 1
    assert harness.sent.pop()["error"]["code"] == errors.UNAVAILABLE


# -- bounds, lanes, cancellation, replies that cannot leave ------------------------------------------


class LaneMethods(MethodGroup):
    prefix = "lane_"

    @public(offload=True, system=True, role="reader")
    def status(self) -> str:
        return "fine"

    @public(offload=True, system=True, role="reader")
    def held_status(self, gate: str) -> str:
        LATE_GATES[gate].wait(10)
        return "held"

    @public(offload=True, role="reader")
    def late(self, gate: str) -> concurrent.futures.Future[Any]:
        try:
            LATE_GATES[gate].wait(10)
            return self.services.ask("owner", Double(1000))
        finally:
            LATE_DONE.set()

    @public(role="reader")
    def blob(self, size: int) -> str:
        return "x" * size


LATE_GATES: dict[str, threading.Event] = {}
LATE_DONE = threading.Event()


@pytest.fixture
def lanes(harness: Harness) -> Harness:
    harness.dispatcher.registry.add_group(LaneMethods(harness.services))  # type: ignore[attr-defined]
    return harness


def test_per_client_bound_leaves_other_clients_their_share(lanes: Harness) -> None:
    lanes.dispatcher.max_in_flight = 10
    lanes.dispatcher.max_in_flight_per_client = 1
    lanes.handle(_request("owner_hold", [], "a1"), b"A")
    lanes.handle(_request("owner_hold", [], "a2"), b"A")
    assert lanes.sent.pop()["error"]["data"] == {"max_in_flight_per_client": 1}
    lanes.handle(_request("owner_hold", [], "b1"), b"B")
    assert lanes.sent == []  # B's call waits like A's first, not busy
    assert lanes.dispatcher.in_flight == 2
    GATE.set()
    assert {lanes.wait_reply()["id"], lanes.wait_reply()["id"]} == {"a1", "b1"}
    lanes.handle(_request("owner_double", [1], "a3"), b"A")
    assert lanes.wait_reply()["id"] == "a3"  # A's count went back down


def test_system_calls_are_exempt_from_the_global_bound(lanes: Harness) -> None:
    lanes.dispatcher.max_in_flight_per_client = 10
    lanes.handle(_request("owner_hold", [], 1))
    lanes.handle(_request("owner_hold", [], 2))  # the global bound (2) is reached
    lanes.handle(_request("lane_status", [], "status"))
    assert lanes.wait_reply() == {"jsonrpc": "2.0", "id": "status", "result": "fine"}
    lanes.handle(_request("owner_double", [1], 3))
    assert lanes.sent.pop()["error"]["data"] == {"max_in_flight": 2}


def test_a_client_flooding_the_system_lane_leaves_the_others_their_status(lanes: Harness) -> None:
    lanes.dispatcher.max_in_flight_per_client = 10
    LATE_GATES["status"] = threading.Event()
    lanes.handle(_request("lane_held_status", ["status"], "a1"), b"A")
    lanes.handle(_request("lane_status", [], "a2"), b"A")
    assert lanes.sent.pop()["error"]["data"] == {"max_system_calls_per_client": MAX_SYSTEM_CALLS_PER_CLIENT}
    lanes.handle(_request("lane_status", [], "b1"), b"B")
    assert lanes.wait_reply() == {"jsonrpc": "2.0", "id": "b1", "result": "fine"}
    LATE_GATES["status"].set()
    assert lanes.wait_reply()["id"] == "a1"
    lanes.handle(_request("lane_status", [], "a3"), b"A")
    assert lanes.wait_reply()["id"] == "a3"  # A's count went back down


def test_offloaded_work_past_its_deadline_never_asks_the_owner(lanes: Harness) -> None:
    LATE_GATES["late"] = threading.Event()
    LATE_DONE.clear()
    lanes.handle(_request("lane_late", ["late"], "late"))
    lanes.now[0] = 6.0  # type: ignore[attr-defined]  # past call_timeout_s (5)
    lanes.dispatcher.expire()
    assert lanes.sent.pop()["error"]["code"] == errors.TIMEOUT
    LATE_GATES["late"].set()
    assert LATE_DONE.wait(5)
    # The method went on after its caller gave up: its ask was refused, so nothing reached the owner.
    lanes.handle(_request("owner_double", [7], "next"))
    assert lanes.wait_reply() == {"jsonrpc": "2.0", "id": "next", "result": {"doubled": 14}}
    assert 1000 not in DOUBLED
    assert 7 in DOUBLED
    assert lanes.dispatcher.in_flight == 0


def test_a_reply_over_the_bound_becomes_too_large(lanes: Harness) -> None:
    lanes.dispatcher.max_reply_bytes = 100
    lanes.handle(_request("lane_blob", [200], "big"))
    error = lanes.sent.pop()["error"]
    assert error["code"] == errors.TOO_LARGE
    assert error["data"] == {"max_reply_bytes": 100}
    lanes.handle(_request("lane_blob", [10], "small"))
    assert lanes.sent.pop()["result"] == "x" * 10


def test_a_batch_over_the_reply_bound_holds_no_more_than_the_bound(lanes: Harness) -> None:
    # 40 members of 50 kB each against a 100 kB bound: once the sum is over, the
    # replies already in are dropped and later ones are never kept.
    lanes.dispatcher.max_reply_bytes = 100_000
    batch = [_request("lane_blob", [50_000], n) for n in range(40)]
    tracemalloc.start()
    try:
        lanes.handle(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    replies = lanes.sent.pop()
    assert [reply["id"] for reply in replies] == list(range(40))
    assert {reply["error"]["code"] for reply in replies} == {errors.TOO_LARGE}
    assert peak < 1_000_000, f"the batch held {peak} bytes at its peak"  # all 40 kept: over 2 MB


def test_a_batch_whose_errors_would_not_fit_gets_one_too_large_error(lanes: Harness) -> None:
    lanes.dispatcher.max_reply_bytes = 1000
    lanes.handle([_request("lane_blob", [1], n) for n in range(200)])
    reply = lanes.sent.pop()
    assert reply["id"] is None
    assert reply["error"]["code"] == errors.TOO_LARGE


@pytest.mark.parametrize(
    ("request_object", "code"),
    [
        ({"jsonrpc": "2.0", "method": "m" * 500_000, "id": 1}, errors.METHOD_NOT_FOUND),
        ({"jsonrpc": "2.0", "method": "owner_double", "id": 1, "x" * 500_000: 1}, errors.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "method": "owner_double", "params": {"p" * 500_000: 1}, "id": 1}, errors.INVALID_PARAMS),
    ],
    ids=["method", "member", "parameter"],
)
def test_an_error_repeats_a_long_name_cut_short(harness: Harness, request_object: Any, code: int) -> None:
    harness.dispatcher.max_reply_bytes = 100_000  # echoed whole, the reply would be too large instead
    harness.handle(request_object)
    reply = harness.sent.pop()
    assert reply["error"]["code"] == code
    assert len(json.dumps(reply)) < 1000
    assert "(500000 characters)" in reply["error"]["message"]


def test_a_batch_longer_than_its_bound_is_refused_whole(harness: Harness) -> None:
    # A long batch (a megabyte of "{}" is 350,000 members) would hold the I/O thread for seconds.
    harness.handle([_request("owner_double", [n], n) for n in range(101, 152)])  # 51, over max_batch
    reply = harness.sent.pop()
    assert reply["id"] is None
    assert reply["error"]["code"] == errors.TOO_LARGE
    assert reply["error"]["data"] == {"max_batch": 50}
    harness.handle([_request("owner_double", [n], n) for n in (7000, 7001)])
    assert [item["result"] for item in harness.wait_reply()] == [{"doubled": 14000}, {"doubled": 14002}]
    assert not set(range(101, 152)) & set(DOUBLED)


def test_a_send_that_fails_gets_an_internal_error_and_nothing_raises(lanes: Harness) -> None:
    attempts: list[bytes] = []

    def send(reply: bytes) -> None:
        attempts.append(reply)
        if len(attempts) == 1:
            msg = "the socket refused"
            raise RuntimeError(msg)

    lanes.dispatcher.handle(json.dumps(_request("lane_blob", [3], 9)).encode(), send)
    assert json.loads(attempts[1])["error"]["code"] == errors.INTERNAL_ERROR
    assert json.loads(attempts[1])["id"] == 9

    def always_fails(_reply: bytes) -> None:
        msg = "the socket is gone"
        raise RuntimeError(msg)

    lanes.dispatcher.handle(json.dumps(_request("lane_blob", [3], 10)).encode(), always_fails)  # no exception
