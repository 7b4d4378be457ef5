"""The gateway: JSON-RPC 2.0 over a ZeroMQ ROUTER socket, forwarding calls to the actors that own them.

The socket lives in one I/O thread that the gateway actor starts once the
endpoint is bound (a bind error fails ``on_start``, so the supervisor sees a
start failure) and stops in ``on_stop`` and ``on_failure``. That thread waits in
``zmq.Poller`` on the socket and on the read end of a wakeup pipe: when an owning
actor resolves a call's future in its own thread, the completion is queued and
one byte written to the pipe, so the reply leaves at once. The poll timeout is
the nearest call deadline, infinite when nothing waits: an idle gateway uses no
CPU.

Each incarnation has its own ZeroMQ context, terminated when its thread ends:
termination waits until the socket is really closed (and its last replies are
flushed, within ``LINGER``), so a restarted gateway binds the same endpoint at
once and its clients' sockets reconnect by themselves.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import json
import os
import threading
from dataclasses import dataclass
from typing import Any, cast

import zmq

from nua.actors._supervised import ChildContext, SupervisedActor
from nua.actors.directory import Directory
from nua.actors.health import Health
from nua.daemon.endpoint import ipc_path
from nua.rpc import errors, registry
from nua.rpc.dispatch import Dispatcher
from nua.rpc.protocol import encode_error
from nua.rpc.services import Services
from nua.settings import Settings, private_dir

# How long closing the socket may wait to flush replies already sent.
LINGER_MS = 1000
# Messages taken from the socket per poll round, so completions are not starved.
RECV_BATCH = 256
# Threads hashing passwords (scrypt releases the GIL) and running other offloaded methods.
POOL_THREADS = max(2, min(8, os.cpu_count() or 2))
# How long stopping waits for the I/O thread (it ends at its next poll round).
IO_STOP_TIMEOUT_S = 5.0


# pyzmq's flags are enum members: combining or converting them on every message costs
# more than the socket call itself, so the hot path uses their plain int values.
_NOBLOCK = int(zmq.NOBLOCK)
_SEND_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


def _receive(sock: zmq.Socket[Any]) -> list[bytes]:
    """One whole multipart message, without waiting (``zmq.Again`` when none is queued).

    ``recv_multipart`` asks the socket for RCVMORE after each frame, an option
    lookup and an enum conversion; a frame object carries the flag already.
    """
    frame = sock.recv(_NOBLOCK, copy=False)
    frames = [frame.bytes]
    while frame.more:
        frame = sock.recv(_NOBLOCK, copy=False)
        frames.append(frame.bytes)
    return frames


@dataclass(frozen=True)
class GatewayInfo:
    """Asks the gateway for ``{"endpoint", "methods", "in_flight"}``."""


@dataclass(frozen=True)
class IoFailed:
    """Told by the I/O thread when it dies unexpectedly: the gateway fails too, and is restarted."""

    error: str


class GatewayIoError(RuntimeError):
    """The gateway's I/O thread died; raising it makes the supervisor restart the gateway."""


class _Wakeup:
    """A self-pipe the I/O thread polls; any thread may ring it.

    Rings are coalesced: one byte is written until the I/O thread has drained the pipe.
    """

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._lock = threading.Lock()
        self._pending = False
        self._closed = False

    def ring(self) -> None:
        if self._pending:
            return
        with self._lock:
            if self._closed or self._pending:
                return
            self._pending = True
            # A full pipe needs no more bytes: the I/O thread is woken anyway.
            with contextlib.suppress(BlockingIOError):
                os.write(self._write_fd, b"\0")

    def drain(self) -> None:
        # Read, then clear the flag, never the reverse: a ring between a clear and a
        # read would leave the flag set with its byte consumed, and every later ring
        # would be skipped. The queue is processed after this, so nothing is missed.
        with contextlib.suppress(BlockingIOError):
            while os.read(self.read_fd, 4096):
                pass
        self._pending = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            os.close(self._write_fd)
            os.close(self.read_fd)


def _request_id(payload: bytes) -> Any:
    """The id of a single request, best effort (``None`` when there is none to read)."""
    try:
        request = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return request.get("id") if isinstance(request, dict) else None


class Gateway(SupervisedActor):
    """Binds the RPC endpoint and serves it from its I/O thread."""

    def __init__(
        self, context: ChildContext, settings: Settings, directory: Directory, health: Health | None = None
    ) -> None:
        super().__init__(context)
        self.settings = settings
        self.endpoint = settings.zmq.bind_endpoint
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._zmq: zmq.Context[Any] | None = None
        self._socket: zmq.Socket[Any] | None = None
        self._wakeup: _Wakeup | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._dispatcher: Dispatcher | None = None
        self.services = Services(settings, directory, health=health or Health())

    # -- lifecycle ----------------------------------------------------------------------

    def on_start(self) -> None:
        # on_failure and on_stop are not called when on_start raises: clean up here.
        try:
            self._setup()
        except BaseException:
            self._teardown_unstarted()
            raise
        self.log.info("gateway_listening", endpoint=self.services.endpoint, methods=len(self.services.registry))

    def _setup(self) -> None:
        registry.build(self.services, log=self.log)
        self._wakeup = _Wakeup()
        self._pool = concurrent.futures.ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="nua-rpc-pool")
        rpc = self.settings.rpc
        self._dispatcher = Dispatcher(
            self.services.registry,
            executor=self._pool,
            wakeup=self._wakeup.ring,
            max_in_flight=rpc.max_in_flight,
            call_timeout_s=rpc.call_timeout_s,
            tracebacks=self.settings.debug.tracebacks,
            log=self.log,
        )
        self._zmq = zmq.Context()
        self._socket = self._bind()
        # Handing the socket to another thread is allowed with a memory barrier; starting the thread is one.
        name = f"nua-gateway-io-{self.context.generation}"
        self._thread = threading.Thread(target=self._io_main, name=name, daemon=True)
        self._thread.start()

    def _bind(self) -> zmq.Socket[Any]:
        assert self._zmq is not None  # noqa: S101 - set just before
        sock: zmq.Socket[Any] = self._zmq.socket(zmq.ROUTER)
        try:
            sock.setsockopt(zmq.LINGER, LINGER_MS)
            # The hard limit: a peer sending a bigger frame is disconnected by ZeroMQ itself.
            sock.setsockopt(zmq.MAXMSGSIZE, self.settings.rpc.max_message_bytes)
            socket_file = ipc_path(self.endpoint)
            if socket_file is not None:
                private_dir(socket_file.parent)
            try:
                sock.bind(self.endpoint)
            except zmq.ZMQError as exc:
                msg = f"cannot bind the RPC endpoint {self.endpoint}: {exc}"
                raise OSError(exc.errno or errno.EADDRINUSE, msg) from None
            if socket_file is not None:
                socket_file.chmod(0o600)
            self.services.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            sock.close(linger=0)
            raise
        return sock

    def _teardown_unstarted(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        self._finish()

    def on_stop(self) -> None:
        self._shutdown()
        self.log.info("gateway_stopped", endpoint=self.services.endpoint)

    def on_failure(self, *_exc_info: object) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        self._stopping.set()
        if self._wakeup is not None:
            self._wakeup.ring()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(IO_STOP_TIMEOUT_S)
            if self._thread.is_alive():
                self.log.error("gateway_io_thread_abandoned", timeout_s=IO_STOP_TIMEOUT_S)
                return
        if self._thread is None:
            self._finish()

    def _finish(self) -> None:
        """Release what the I/O thread does not own: the pool, the pipe, the context."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._wakeup is not None:
            self._wakeup.close()
            self._wakeup = None
        if self._zmq is not None:
            self._zmq.term()  # waits until the socket is closed: the endpoint is free again
            self._zmq = None

    def on_receive(self, message: Any) -> Any:
        match message:
            case GatewayInfo():
                dispatcher = self._dispatcher
                return {
                    "endpoint": self.services.endpoint,
                    "methods": len(self.services.registry),
                    "in_flight": dispatcher.in_flight if dispatcher is not None else 0,
                }
            case IoFailed(error):
                raise GatewayIoError(error)
            case _:
                return super().on_receive(message)

    # -- the I/O thread -------------------------------------------------------------------

    def _io_main(self) -> None:
        sock, wakeup, dispatcher = self._socket, self._wakeup, self._dispatcher
        assert sock is not None  # noqa: S101 - set in _setup
        assert wakeup is not None  # noqa: S101
        assert dispatcher is not None  # noqa: S101
        try:
            self._serve(sock, wakeup, dispatcher)
            dispatcher.abort_all(
                errors.UnavailableError(
                    "the gateway stopped before the reply; the call may have run", {"dispatched": True}
                )
            )
            self._refuse_queued(sock)
        except Exception as exc:  # reported to the actor, which fails and is restarted
            self.log.exception("gateway_io_failed")
            if not self._stopping.is_set():
                self.actor_ref.tell(IoFailed(f"{type(exc).__name__}: {exc}"))
        finally:
            sock.close(linger=LINGER_MS)
            self._socket = None
            self._finish()

    def _serve(self, sock: zmq.Socket[Any], wakeup: _Wakeup, dispatcher: Dispatcher) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(wakeup.read_fd, zmq.POLLIN)
        limit = self.settings.rpc.max_message_bytes
        timeout_ms: int | None = None
        while not self._stopping.is_set():
            events = dict(poller.poll(timeout_ms))
            if wakeup.read_fd in events:
                wakeup.drain()
            dispatcher.process_completions()
            if sock in events:
                # Ask the socket whether more is queued rather than catch zmq.Again:
                # an exception per wakeup costs more than the whole check.
                for _ in range(RECV_BATCH):
                    try:
                        frames = _receive(sock)
                    except zmq.Again:  # the poll's news was stale
                        break
                    self._on_message(sock, frames, limit, dispatcher)
                    if not cast("int", sock.getsockopt(_EVENTS)) & _POLLIN:
                        break
            next_deadline = dispatcher.expire()
            # Round up: waking a hair early would only poll again.
            timeout_ms = None if next_deadline is None else int(next_deadline * 1000) + 1

    @staticmethod
    def _refuse_queued(sock: zmq.Socket[Any]) -> None:
        """Answer the calls already queued on the socket: they were not run, a retry is safe."""
        error = errors.UnavailableError("the gateway is restarting; retry", {"dispatched": False})
        for _ in range(RECV_BATCH * 4):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) > 1:
                sock.send_multipart([*frames[:-1], encode_error(_request_id(frames[-1]), error)], zmq.NOBLOCK)

    @staticmethod
    def _on_message(sock: zmq.Socket[Any], frames: list[bytes], limit: int, dispatcher: Dispatcher) -> None:
        envelope, payload = frames[:-1], frames[-1]
        if not envelope:
            return  # a ROUTER always prefixes the peer's identity; this cannot be answered

        def send(reply: bytes) -> None:
            for frame in envelope:
                sock.send(frame, _SEND_MORE)
            sock.send(reply, _NOBLOCK)

        if sum(map(len, frames)) > limit:
            error = errors.TooLargeError(f"the message exceeds {limit} bytes", {"limit": limit})
            send(encode_error(None, error))
            return
        dispatcher.handle(payload, send)


__all__ = ["Gateway", "GatewayInfo", "GatewayIoError", "IoFailed"]
