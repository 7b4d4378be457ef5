"""The dispatcher talking to a fake owner actor directly (ask/tell, no ZeroMQ)."""

from __future__ import annotations

import concurrent.futures
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rpc_helpers import make_settings

from nua.actors._future import NotifyingFuture
from nua.actors._supervised import ChildContext, SupervisedActor
from nua.actors.directory import Directory
from nua.rpc import errors
from nua.rpc.dispatch import Dispatcher
from nua.rpc.registry import MethodGroup, public
from nua.rpc.services import Services, then


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
                return value * 2
            case Hold(gate):
                gate.wait(10)
                return "held"
            case _:
                return super().on_receive(message)


class OwnerMethods(MethodGroup):
    prefix = "owner_"

    @public
    def double(self, value: int) -> NotifyingFuture:
        return then(self.services.ask("owner", Double(value)), lambda doubled: {"doubled": doubled})

    @public
    def hold(self) -> NotifyingFuture:
        return self.services.ask("owner", Hold(GATE))

    @public(offload=True)
    def offloaded(self, value: int) -> NotifyingFuture:
        return self.services.ask("owner", Double(value))


GATE = threading.Event()


class Harness:
    """Runs the dispatcher in the test thread, as the I/O thread would."""

    def __init__(self, dispatcher: Dispatcher, woken: threading.Event) -> None:
        self.dispatcher = dispatcher
        self.woken = woken
        self.sent: list[Any] = []

    def handle(self, request: Any) -> None:
        self.dispatcher.handle(json.dumps(request).encode(), lambda reply: self.sent.append(json.loads(reply)))

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
        services.registry, executor=pool, wakeup=woken.set, max_in_flight=2, call_timeout_s=5.0, clock=lambda: now[0]
    )
    harness = Harness(dispatcher, woken)
    harness.now = now  # type: ignore[attr-defined]
    harness.directory = directory  # type: ignore[attr-defined]
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
    assert harness.wait_reply()["result"] == 10


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
