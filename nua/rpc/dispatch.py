"""The gateway's dispatch core, free of ZeroMQ: decode, check, run, and reply when done.

One thread (the gateway's I/O thread) calls :meth:`Dispatcher.handle`,
:meth:`Dispatcher.process_completions` and :meth:`Dispatcher.expire`; nothing
else touches its state. A method either answers at once (``test_add``, run in
that thread) or returns a future: from an actor's ``ask`` or from the thread pool
that runs ``offload`` methods. When such a future resolves, in whatever thread,
its callback queues the completion and calls ``wakeup`` so that the I/O thread
replies at once; nothing polls.

Each waiting call has a deadline (``call_timeout_s``); past it the client gets a
timeout error and the late result is dropped. The calls waiting at once are
bounded (``max_in_flight``): past the bound a call gets a busy error at once.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import queue
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from nua.model.errors import ModelError
from nua.rpc import errors
from nua.rpc.protocol import BadRequest, Batch, GuardedProtocol, encode_batch, encode_error, encode_result
from nua.rpc.registry import Registry

Send = Callable[[bytes], None]
# Where one request's encoded reply goes; ``None`` for a notification's.
Finish = Callable[[bytes | None], None]
AnyFuture = pykka.Future[Any] | concurrent.futures.Future[Any]

_MODEL_ERRORS: dict[str, type[errors.RpcError]] = {
    "not_found": errors.NotFoundError,
    "conflict": errors.ConflictError,
    "invalid": errors.InvalidParamsError,
    "internal": errors.InternalError,
    "unavailable": errors.UnavailableError,
}


def to_rpc_error(exc: BaseException, *, tracebacks: bool, log: structlog.stdlib.BoundLogger) -> errors.RpcError:
    """The error reply for what a method raised (or its future failed with)."""
    if isinstance(exc, errors.RpcError):
        return exc
    if isinstance(exc, ModelError):
        return _MODEL_ERRORS.get(exc.kind, errors.InternalError)(exc.message, exc.data or None)
    if isinstance(exc, pykka.ActorDeadError):
        return errors.UnavailableError("the actor handling this call stopped (restarting?); retry")
    if isinstance(exc, concurrent.futures.CancelledError):
        return errors.UnavailableError("the gateway is stopping; retry")
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log.error("rpc_method_failed", error=f"{type(exc).__name__}: {exc}", traceback=text)
    data = {"exception": type(exc).__name__, "traceback": text} if tracebacks else None
    return errors.InternalError(f"internal error ({type(exc).__name__}); see the daemon's log", data)


def _is_future(value: Any) -> bool:
    return isinstance(value, pykka.Future | concurrent.futures.Future)


def _outcome(future: AnyFuture) -> Any:
    """The value of a resolved future, or its exception raised."""
    if isinstance(future, concurrent.futures.Future):
        return future.result(timeout=0)
    return future.get(timeout=0)


@dataclass
class _Waiting:
    request_id: Any
    method: str
    finish: Finish
    deadline: float
    notification: bool

    def fail(self, error: errors.RpcError) -> None:
        """Answer the call with ``error`` (nothing, for a notification)."""
        self.finish(None if self.notification else encode_error(self.request_id, error))


class _BatchReply:
    """Collects the replies of a batch's members; sends one array once all are in."""

    def __init__(self, send: Send, size: int) -> None:
        self._send = send
        self._parts: list[bytes | None] = [None] * size
        self._remaining = size

    def finisher(self, index: int) -> Finish:
        def finish(part: bytes | None) -> None:
            self._parts[index] = part
            self._remaining -= 1
            if self._remaining == 0:
                parts = [p for p in self._parts if p is not None]
                if parts:  # a batch of notifications only gets no reply at all
                    self._send(encode_batch(parts))

        return finish


class Dispatcher:
    """Runs the calls of decoded messages and hands back each reply when it is ready."""

    def __init__(
        self,
        registry: Registry,
        *,
        executor: concurrent.futures.Executor,
        wakeup: Callable[[], None],
        max_in_flight: int,
        call_timeout_s: float,
        tracebacks: bool = False,
        log: structlog.stdlib.BoundLogger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.executor = executor
        self.max_in_flight = max_in_flight
        self.call_timeout_s = call_timeout_s
        self.tracebacks = tracebacks
        self.log = log or structlog.stdlib.get_logger("nua.rpc.dispatch")
        self._clock = clock
        self._wakeup = wakeup
        self._protocol = GuardedProtocol()
        self._ids = itertools.count()
        # Every call has the same timeout, so insertion order is deadline order: the
        # first entry holds the nearest deadline (a heap would hold the same order).
        self._waiting: OrderedDict[int, _Waiting] = OrderedDict()
        self._done: queue.SimpleQueue[tuple[int, AnyFuture]] = queue.SimpleQueue()

    @property
    def in_flight(self) -> int:
        """Calls waiting for a future (read from any thread: an int is read atomically)."""
        return len(self._waiting)

    # -- requests ---------------------------------------------------------------------

    def handle(self, payload: bytes, send: Send) -> None:
        """Decode ``payload`` and start its call(s); ``send`` gets the reply, now or later."""
        decoded = self._protocol.decode(payload)
        if isinstance(decoded, BadRequest):
            send(encode_error(decoded.id, decoded.error))
        elif isinstance(decoded, Batch):
            batch = _BatchReply(send, len(decoded.members))
            for index, member in enumerate(decoded.members):
                finish = batch.finisher(index)
                if isinstance(member, BadRequest):
                    finish(encode_error(member.id, member.error))
                else:
                    self._start(member, finish)
        else:
            self._start(decoded, lambda part: send(part) if part is not None else None)

    def _start(self, request: Any, finish: Finish) -> None:
        notification = bool(request.one_way)
        request_id = request.unique_id

        def fail(error: errors.RpcError) -> None:
            finish(None if notification else encode_error(request_id, error))

        method = self.registry.get(request.method)
        if method is None:
            fail(errors.MethodNotFoundError(f"Method not found: {request.method}", {"method": request.method}))
            return
        args, kwargs = request.args, request.kwargs
        try:
            method.check(args, kwargs)
        except errors.InvalidParamsError as exc:
            fail(exc)
            return
        if len(self._waiting) >= self.max_in_flight:
            fail(errors.BusyError("too many calls in flight; retry later", {"max_in_flight": self.max_in_flight}))
            return
        try:
            if method.offload:
                result: Any = self.executor.submit(method.function, *args, **kwargs)
            else:
                result = method.function(*args, **kwargs)
        except RuntimeError as exc:
            if method.offload:  # the pool is shut down: the gateway is stopping
                fail(errors.UnavailableError("the gateway is stopping; retry"))
            else:
                fail(to_rpc_error(exc, tracebacks=self.tracebacks, log=self.log))
            return
        except Exception as exc:  # noqa: BLE001 - every failure of a method becomes its error reply
            fail(to_rpc_error(exc, tracebacks=self.tracebacks, log=self.log))
            return
        if not _is_future(result):
            finish(None if notification else encode_result(request_id, result))
            return
        call_id = next(self._ids)
        deadline = self._clock() + self.call_timeout_s
        self._waiting[call_id] = _Waiting(request_id, request.method, finish, deadline, notification)
        self._watch(call_id, result)

    def _watch(self, call_id: int, future: AnyFuture) -> None:
        done = self._done
        wakeup = self._wakeup

        def completed(resolved: Any) -> None:
            # Runs in the resolving thread (an actor's, a pool worker's): hand over only.
            done.put((call_id, resolved))
            wakeup()

        future.add_done_callback(completed)  # type: ignore[union-attr]  # nua futures are NotifyingFuture

    # -- completions and deadlines --------------------------------------------------------

    def process_completions(self) -> None:
        """Reply to every call whose future resolved since the last time."""
        while True:
            try:
                call_id, future = self._done.get_nowait()
            except queue.Empty:
                return
            waiting = self._waiting.get(call_id)
            if waiting is None:
                continue  # timed out already: the late result is dropped
            try:
                value = _outcome(future)
            except Exception as exc:  # noqa: BLE001 - the future's failure is the call's error reply
                del self._waiting[call_id]
                waiting.fail(to_rpc_error(exc, tracebacks=self.tracebacks, log=self.log))
                continue
            if _is_future(value):
                self._watch(call_id, value)  # an offloaded method that ended by asking an actor
                continue
            del self._waiting[call_id]
            waiting.finish(None if waiting.notification else encode_result(waiting.request_id, value))

    def expire(self) -> float | None:
        """Fail every call past its deadline; return the seconds until the next one (``None``: none waits)."""
        now = self._clock()
        while self._waiting:
            call_id, waiting = next(iter(self._waiting.items()))
            if waiting.deadline > now:
                return waiting.deadline - now
            del self._waiting[call_id]
            self.log.warning("rpc_call_timeout", method=waiting.method, timeout_s=self.call_timeout_s)
            error = errors.TimeoutError(
                f"{waiting.method} did not complete within {self.call_timeout_s} s; its result will be dropped",
                {"method": waiting.method, "timeout_s": self.call_timeout_s},
            )
            waiting.fail(error)
        return None

    def abort_all(self, error: errors.RpcError) -> int:
        """Answer every waiting call with ``error`` (the gateway is stopping); return how many."""
        count = 0
        while self._waiting:
            _, waiting = self._waiting.popitem(last=False)
            waiting.fail(error)
            count += 1
        return count


__all__ = ["Dispatcher", "to_rpc_error"]
