"""A plugin for the RPC tests: the JSON-RPC specification's example methods and gated slow calls.

Loaded through ``[rpc] plugins = ["rpc_test_plugin"]``, which also tests plugin loading.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

from nua.model import checks
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public
from nua.rpc.services import DB_WRITER

# Gates the tests open; a gated call blocks a pool thread until its gate opens.
GATES: dict[str, threading.Event] = {}
ENTERED: dict[str, threading.Event] = {}
# Set when a gated call has returned or raised (FINISHED) and what it raised (OUTCOMES).
FINISHED: dict[str, threading.Event] = {}
OUTCOMES: dict[str, str] = {}
_lock = threading.Lock()


def gate(name: str) -> threading.Event:
    with _lock:
        return GATES.setdefault(name, threading.Event())


def entered(name: str) -> threading.Event:
    with _lock:
        return ENTERED.setdefault(name, threading.Event())


def finished(name: str) -> threading.Event:
    with _lock:
        return FINISHED.setdefault(name, threading.Event())


class _ExplodingDict(dict[str, Any]):
    """A result whose encoding fails with an error no JSON encoder expects."""

    def items(self) -> Any:
        msg = "this value cannot be listed"
        raise RuntimeError(msg)


class SpecMethods(MethodGroup):
    """The methods the examples of https://www.jsonrpc.org/specification call."""

    prefix = ""

    @public(role="reader")
    def subtract(self, minuend: float, subtrahend: float) -> float:
        return minuend - subtrahend

    @public(role="reader")
    def sum(self, *numbers: float) -> float:
        return sum(numbers)

    @public(role="reader")
    def update(self, *args: Any) -> None:
        return None

    @public(role="reader")
    def notify_hello(self, *args: Any) -> None:
        return None

    @public(role="reader")
    def notify_sum(self, *args: Any) -> None:
        return None

    @public(role="reader")
    def get_data(self) -> list[Any]:
        return ["hello", 5]


class SlowMethods(MethodGroup):
    """Calls that block in the gateway's pool until the test opens their gate."""

    prefix = "slow_"

    @public(offload=True, role="reader")
    def wait(self, name: str) -> str:
        """Block until gate ``name`` opens (at most 30 s), then return ``name``."""
        entered(name).set()
        gate(name).wait(30)
        return name

    @public(offload=True, role="reader")
    def set_late(self, name: str, key: str) -> Future[Any]:
        """Block until gate ``name`` opens, then store the setting ``key`` (unless the caller has gone)."""
        entered(name).set()
        try:
            gate(name).wait(30)
            command = checks.setting_set(key, name, self.services.settings.db.max_value_bytes)
            return self.services.ask(DB_WRITER, command)
        except Exception as exc:
            OUTCOMES[name] = type(exc).__name__
            raise
        finally:
            finished(name).set()

    @public(role="reader")
    def unserialisable(self) -> object:
        return object()

    @public(role="reader")
    def surrogate(self) -> str:
        """A string UTF-8 cannot encode."""
        return "\ud800"

    @public(role="reader")
    def exploding(self) -> dict[str, Any]:
        return _ExplodingDict(a=1)

    @public(role="reader")
    def blob(self, size: int) -> str:
        """``size`` bytes of text."""
        return "x" * size

    @public(role="reader")
    def boom(self) -> None:
        msg = "a bug in a method"
        raise RuntimeError(msg)
