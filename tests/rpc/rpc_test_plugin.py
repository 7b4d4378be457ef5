"""A plugin for the RPC tests: the JSON-RPC specification's example methods and gated slow calls.

Loaded through ``[rpc] plugins = ["rpc_test_plugin"]``, which also tests plugin loading.
"""

from __future__ import annotations

import threading
from typing import Any

from nua.rpc.registry import MethodGroup, public

# Gates the tests open; a gated call blocks a pool thread until its gate opens.
GATES: dict[str, threading.Event] = {}
ENTERED: dict[str, threading.Event] = {}
_lock = threading.Lock()


def gate(name: str) -> threading.Event:
    with _lock:
        return GATES.setdefault(name, threading.Event())


def entered(name: str) -> threading.Event:
    with _lock:
        return ENTERED.setdefault(name, threading.Event())


class SpecMethods(MethodGroup):
    """The methods the examples of https://www.jsonrpc.org/specification call."""

    prefix = ""

    @public
    def subtract(self, minuend: float, subtrahend: float) -> float:
        return minuend - subtrahend

    @public
    def sum(self, *numbers: float) -> float:
        return sum(numbers)

    @public
    def update(self, *args: Any) -> None:
        return None

    @public
    def notify_hello(self, *args: Any) -> None:
        return None

    @public
    def notify_sum(self, *args: Any) -> None:
        return None

    @public
    def get_data(self) -> list[Any]:
        return ["hello", 5]


class SlowMethods(MethodGroup):
    """Calls that block in the gateway's pool until the test opens their gate."""

    prefix = "slow_"

    @public(offload=True)
    def wait(self, name: str) -> str:
        """Block until gate ``name`` opens (at most 30 s), then return ``name``."""
        entered(name).set()
        gate(name).wait(30)
        return name

    @public
    def unserialisable(self) -> object:
        return object()

    @public
    def boom(self) -> None:
        msg = "a bug in a method"
        raise RuntimeError(msg)
