"""The gateway's dispatch core, free of ZeroMQ: decode, check, run, and reply when done.

One thread (the gateway's I/O thread) calls :meth:`Dispatcher.handle`,
:meth:`Dispatcher.process_completions` and :meth:`Dispatcher.expire`; nothing
else touches its state. A method either answers at once (``test_add``, run in
that thread) or returns a future: from an actor's ``ask`` or from the thread pool
that runs ``offload`` methods. When such a future resolves, in whatever thread,
its callback queues the completion and calls ``wakeup`` so that the I/O thread
replies at once; nothing polls.

Each waiting call has a deadline (``call_timeout_s``); past it the client gets a
timeout error, the late result is dropped, offloaded work that has not started
is cancelled, and work that has started is refused when it asks an actor
(:mod:`nua.rpc.cancel`). The calls waiting at once are bounded for all clients
(``max_in_flight``) and for each client (``max_in_flight_per_client``, a
client being a routing identity; each member of a batch counts): past a bound
a call gets a busy error at once, so one client flooding the daemon cannot
take every other client's share. System calls (``@public(system=True)``:
status, introspection) have their own lane: their own pool, exempt from the
global bound, and at most :data:`MAX_SYSTEM_CALLS_PER_CLIENT` waiting for each
client, so that clients flooding the lane cannot make another's status wait.

Replying never raises out of here: a reply over ``max_reply_bytes`` becomes a
too-large error asking to page, and a reply that fails to encode or to send
becomes a plain internal error (or, failing that too, is logged and dropped).
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import queue
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from nua.model.audit import AuditEntry
from nua.model.errors import ModelError
from nua.rpc import auditing, errors
from nua.rpc.access import UNAUTHENTICATED, Caller, denial
from nua.rpc.call_log import CallLog, CallStarted
from nua.rpc.cancel import CallScope
from nua.rpc.protocol import BadRequest, Batch, GuardedProtocol, encode_batch, encode_error, encode_result
from nua.rpc.registry import Method, Registry

# System calls one client may have waiting: one status at a time is all a client needs,
# and the lane's pool (two threads) is shared by every client: one client alone can
# never occupy it.
MAX_SYSTEM_CALLS_PER_CLIENT = 1

# Records a denied call (its audit entry, the role it needed); must not raise.
DeniedRecorder = Callable[[AuditEntry, str], None]
Send = Callable[[bytes], None]
# Where one request's encoded reply goes; ``None`` for a notification's.
Finish = Callable[[bytes | None], None]

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


def _too_large_reply(request_id: Any, size: int, limit: int) -> bytes:
    error = errors.TooLargeError(
        f"the reply would be {size} bytes, over rpc.max_reply_bytes ({limit}); "
        "ask for less: page with `limit` and `after`, or send fewer calls per batch",
        {"max_reply_bytes": limit},
    )
    return encode_error(request_id, error)


@dataclass
class _Waiting:
    request_id: Any
    method: str
    finish: Finish
    deadline: float
    notification: bool
    client: bytes
    system: bool
    scope: CallScope | None
    future: concurrent.futures.Future[Any] | None = None
    # A state-changing call's log line, written when it is answered (see nua.rpc.call_log).
    logged: tuple[CallLog, CallStarted] | None = None

    def fail(self, error: errors.RpcError) -> None:
        """Answer the call with ``error`` (nothing, for a notification)."""
        self.finish(None if self.notification else encode_error(self.request_id, error))
        if self.logged is not None:
            self.logged[0].answered(self.logged[1], error)

    def succeed(self, value: Any) -> None:
        """Answer the call with its result ``value``."""
        self.finish(None if self.notification else encode_result(self.request_id, value))
        if self.logged is not None:
            self.logged[0].answered(self.logged[1])

    def give_up(self) -> None:
        """The caller is answered already: cancel what has not started, refuse what comes later."""
        if self.scope is not None:
            self.scope.cancel()
        if self.future is not None:
            self.future.cancel()  # only succeeds when the pool or the actor has not started it


class _BatchReply:
    """Collects the replies of a batch's members; sends one array once all are in.

    The members' replies are kept only while their sum fits ``max_reply_bytes``:
    past it the array can only become a too-large error, so later replies are
    counted and dropped at once. A batch thus holds at most about one reply's
    worth of bytes, however many of its members answer large results.
    """

    def __init__(
        self,
        reply: Callable[[Any, bytes], None],
        size: int,
        max_reply_bytes: int,
        unanswered: Callable[[], None] | None = None,
    ) -> None:
        self._reply = reply
        self._unanswered = unanswered
        self._max_reply_bytes = max_reply_bytes
        self._parts: list[bytes | None] = [None] * size
        self._ids: list[Any] = [None] * size
        self._remaining = size
        self._size = 1  # the brackets, and a comma per member after the first
        self._over = False

    def finisher(self, index: int, request_id: Any) -> Finish:
        self._ids[index] = request_id

        def finish(part: bytes | None) -> None:
            if part is not None:
                self._size += len(part) + 1
                if self._size > self._max_reply_bytes and not self._over:
                    self._over = True
                    self._parts = [None if kept is None else b"" for kept in self._parts]
                if self._over:
                    part = b""  # answered (it gets its error), not kept
            self._parts[index] = part
            self._remaining -= 1
            if self._remaining == 0:
                self._send_all()

        return finish

    def _send_all(self) -> None:
        answered = [(i, p) for i, p in enumerate(self._parts) if p is not None]
        if not answered:  # a batch of notifications only gets no reply at all
            if self._unanswered is not None:
                self._unanswered()
            return
        if self._over:
            self._reply(None, self._too_large([i for i, _ in answered]))
            return
        self._reply(None, encode_batch([p for _, p in answered]))

    def _too_large(self, answered: list[int]) -> bytes:
        """Each answered member's too-large error on its own id (the array stays well formed).

        When even those errors would not fit (a batch of many small calls), one
        too-large error with a null id answers the whole batch instead.
        """
        errors_size = 1
        per_member = []
        for index in answered:
            error = _too_large_reply(self._ids[index], self._size, self._max_reply_bytes)
            errors_size += len(error) + 1
            if errors_size > self._max_reply_bytes:
                return _too_large_reply(None, self._size, self._max_reply_bytes)
            per_member.append(error)
        return encode_batch(per_member)


def _decrement(counts: dict[bytes, int], client: bytes) -> None:
    """One call fewer for ``client``; a client with none left is forgotten (the map stays bounded)."""
    left = counts[client] - 1
    if left:
        counts[client] = left
    else:
        del counts[client]


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
        max_in_flight_per_client: int | None = None,
        max_reply_bytes: int | None = None,
        system_executor: concurrent.futures.Executor | None = None,
        max_batch: int | None = None,
        tracebacks: bool = False,
        log: structlog.stdlib.BoundLogger | None = None,
        clock: Callable[[], float] = time.monotonic,
        record_denied: DeniedRecorder | None = None,
        call_log: CallLog | None = None,
    ) -> None:
        self.registry = registry
        # One line per state-changing call once answered (none when not given: tests of other things).
        self._call_log = call_log
        self._record_denied = record_denied
        self.executor = executor
        self.system_executor = system_executor or executor
        self.max_in_flight = max_in_flight
        self.max_in_flight_per_client = max_in_flight_per_client or max_in_flight
        self.max_reply_bytes = max_reply_bytes or sys.maxsize
        self.call_timeout_s = call_timeout_s
        self.tracebacks = tracebacks
        self.log = log or structlog.stdlib.get_logger("nua.rpc.dispatch")
        self._clock = clock
        self._wakeup = wakeup
        self._protocol = GuardedProtocol(max_batch=max_batch)
        self._ids = itertools.count()
        # Every call has the same timeout, so insertion order is deadline order: the
        # first entry holds the nearest deadline (a heap would hold the same order).
        self._waiting: OrderedDict[int, _Waiting] = OrderedDict()
        self._done: queue.SimpleQueue[tuple[int, concurrent.futures.Future[Any]]] = queue.SimpleQueue()
        # Waiting calls per client (entries at zero are removed: bounded by the calls waiting).
        self._per_client: dict[bytes, int] = {}
        self._system_per_client: dict[bytes, int] = {}
        self._system_waiting = 0

    @property
    def in_flight(self) -> int:
        """Calls waiting for a future (read from any thread: an int is read atomically)."""
        return len(self._waiting)

    # -- requests ---------------------------------------------------------------------

    def handle(
        self,
        payload: bytes,
        send: Send,
        client: bytes = b"",
        caller: Caller = UNAUTHENTICATED,
        unanswered: Callable[[], None] | None = None,
    ) -> None:
        """Decode ``payload`` from ``client`` and start its call(s); ``send`` gets the reply, now or later.

        ``caller`` is the key the connection authenticated with: each call is
        checked against its method's role before anything runs. ``unanswered`` is
        called instead of ``send`` when the request has no reply (a notification,
        or a batch of them), once its calls are done: HTTP answers 204 then.

        ``send`` may raise: the request then gets a plain internal error (sent
        through ``send`` again), and nothing raises out of here.
        """
        decoded = self._protocol.decode(payload)
        if isinstance(decoded, BadRequest):
            self._reply(send, decoded.id, encode_error(decoded.id, decoded.error))
        elif isinstance(decoded, Batch):
            batch = _BatchReply(
                functools.partial(self._reply, send), len(decoded.members), self.max_reply_bytes, unanswered
            )
            for index, member in enumerate(decoded.members):
                if isinstance(member, BadRequest):
                    batch.finisher(index, member.id)(encode_error(member.id, member.error))
                else:
                    self._start(member, batch.finisher(index, member.unique_id), client, caller)
        else:
            request_id = decoded.unique_id

            def finish(part: bytes | None) -> None:
                if part is not None:
                    self._reply(send, request_id, part)
                elif unanswered is not None:
                    unanswered()

            self._start(decoded, finish, client, caller)

    def _reply(self, send: Send, request_id: Any, reply: bytes) -> None:
        """Send one request's (or one batch's) reply; never raises.

        A reply over the size bound becomes a too-large error; a reply whose sending
        fails becomes a plain internal error, sent once; if that fails too, it is logged.
        """
        if len(reply) > self.max_reply_bytes:
            reply = _too_large_reply(request_id, len(reply), self.max_reply_bytes)
        try:
            send(reply)
        except Exception as exc:  # noqa: BLE001 - a reply that cannot leave must not take the I/O loop with it
            self.log.error("rpc_reply_failed", error=f"{type(exc).__name__}: {exc}")
            fallback = encode_error(request_id, errors.InternalError("internal error: the reply could not be sent"))
            try:
                send(fallback)
            except Exception as again:  # noqa: BLE001 - logged; this request goes unanswered
                self.log.error("rpc_reply_dropped", error=f"{type(again).__name__}: {again}")

    def _start(self, request: Any, finish: Finish, client: bytes, caller: Caller) -> None:
        notification = bool(request.one_way)
        request_id = request.unique_id
        found = self.registry.get(request.method) if isinstance(request.method, str) else None
        logged = self._logged(found, caller)

        def fail(error: errors.RpcError) -> None:
            finish(None if notification else encode_error(request_id, error))
            if logged is not None and not isinstance(error, errors.ForbiddenError):  # rpc_denied says it
                logged[0].answered(logged[1], error)

        method = self._checked(request, found, caller)
        if isinstance(method, errors.RpcError):
            fail(method)
            return
        args, kwargs = request.args, request.kwargs
        busy = self._busy(method, client)
        if busy is not None:
            fail(busy)
            return
        # A call answered at once (test_add) needs no deadline: the clock is read only for one that may wait.
        scope = CallScope(method.name, self._clock() + self.call_timeout_s, self._clock) if method.offload else None
        try:
            result = self._run(method, scope, args, kwargs, caller)
        except Exception as exc:  # noqa: BLE001 - every failure of a method becomes its error reply
            fail(to_rpc_error(exc, tracebacks=self.tracebacks, log=self.log))
            return
        if not isinstance(result, concurrent.futures.Future):
            finish(None if notification else encode_result(request_id, result))
            if logged is not None:
                logged[0].answered(logged[1])
            return
        deadline = scope.deadline if scope is not None else self._clock() + self.call_timeout_s
        call_id = next(self._ids)
        waiting = _Waiting(request_id, request.method, finish, deadline, notification, client, method.system, scope)
        waiting.logged = logged
        self._waiting[call_id] = waiting
        self._per_client[client] = self._per_client.get(client, 0) + 1
        if method.system:
            self._system_waiting += 1
            self._system_per_client[client] = self._system_per_client.get(client, 0) + 1
        self._watch(call_id, waiting, result)

    def _logged(self, method: Method | None, caller: Caller) -> tuple[CallLog, CallStarted] | None:
        """The log line to write once the call of ``method`` is answered: a state-changing method's only."""
        if self._call_log is None or method is None or not method.changes:
            return None
        started = self._call_log.begin(caller.who, caller.role.label, method.name)
        return None if started is None else (self._call_log, started)

    def _checked(self, request: Any, method: Method | None, caller: Caller) -> Method | errors.RpcError:
        """``method`` (``request``'s), ``caller`` allowed and its params checked; or the error to answer with."""
        if method is None:
            name = errors.shown(request.method)
            return errors.MethodNotFoundError(f"Method not found: {name}", {"method": name})
        refused = denial(method, caller)
        if refused is not None:
            if self._record_denied is not None and method.role is not None:
                entry = auditing.call_entry(caller.who, caller.role.label, method, request.args, request.kwargs)
                self._record_denied(entry, method.role.label)
            return refused
        try:
            method.check(request.args, request.kwargs)
        except errors.InvalidParamsError as exc:
            return exc
        return method

    def _run(
        self, method: Method, scope: CallScope | None, args: list[Any], kwargs: dict[str, Any], caller: Caller
    ) -> Any:
        """Call ``method`` inline, or submit it to its pool in ``scope`` (a future, then).

        A method that changes state runs with its call's audit entry current, so that
        each change it sends the DB writer commits with its audit record.
        """
        function = method.function
        if method.changes:
            entry = auditing.call_entry(caller.who, caller.role.label, method, args, kwargs)
            if scope is None:
                return auditing.run_in(entry, function, *args, **kwargs)
            function = auditing.bound(entry, function)
        elif scope is None:
            return function(*args, **kwargs)
        pool = self.system_executor if method.system else self.executor
        try:
            return pool.submit(scope.run, function, *args, **kwargs)
        except RuntimeError:  # the pool is shut down: the gateway is stopping
            raise errors.UnavailableError("the gateway is stopping; retry") from None

    def _busy(self, method: Method, client: bytes) -> errors.BusyError | None:
        """The busy error when a bound stops this call now, else ``None``."""
        if self._per_client.get(client, 0) >= self.max_in_flight_per_client:
            return errors.BusyError(
                "too many calls in flight from this client; wait for replies before sending more",
                {"max_in_flight_per_client": self.max_in_flight_per_client},
            )
        if not method.system and len(self._waiting) - self._system_waiting >= self.max_in_flight:
            return errors.BusyError("too many calls in flight; retry later", {"max_in_flight": self.max_in_flight})
        if method.system and self._system_per_client.get(client, 0) >= MAX_SYSTEM_CALLS_PER_CLIENT:
            return errors.BusyError(
                "too many status calls in flight from this client; wait for their replies",
                {"max_system_calls_per_client": MAX_SYSTEM_CALLS_PER_CLIENT},
            )
        return None

    def _watch(self, call_id: int, waiting: _Waiting, future: concurrent.futures.Future[Any]) -> None:
        done = self._done
        wakeup = self._wakeup
        waiting.future = future

        def completed(resolved: Any) -> None:
            # Runs in the resolving thread (an actor's, a pool worker's): hand over only.
            done.put((call_id, resolved))
            wakeup()

        future.add_done_callback(completed)

    def _forget(self, call_id: int) -> _Waiting:
        """Take a call off the waiting list and its client's count."""
        waiting = self._waiting.pop(call_id)
        self._release(waiting)
        return waiting

    def _release(self, waiting: _Waiting) -> None:
        _decrement(self._per_client, waiting.client)
        if waiting.system:
            self._system_waiting -= 1
            _decrement(self._system_per_client, waiting.client)

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
                value = future.result(timeout=0)
            except Exception as exc:  # noqa: BLE001 - the future's failure is the call's error reply
                self._forget(call_id)
                waiting.fail(to_rpc_error(exc, tracebacks=self.tracebacks, log=self.log))
                continue
            if isinstance(value, concurrent.futures.Future):
                self._watch(call_id, waiting, value)  # an offloaded method that ended by asking an actor
                continue
            self._forget(call_id)
            waiting.succeed(value)

    def expire(self) -> float | None:
        """Fail every call past its deadline; return the seconds until the next one (``None``: none waits)."""
        now = self._clock()
        while self._waiting:
            call_id, waiting = next(iter(self._waiting.items()))
            if waiting.deadline > now:
                return waiting.deadline - now
            self._forget(call_id)
            waiting.give_up()
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
            self._release(waiting)
            waiting.give_up()
            waiting.fail(error)
            count += 1
        return count


__all__ = ["Dispatcher", "to_rpc_error"]
