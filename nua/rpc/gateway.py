"""The gateway: JSON-RPC 2.0 over a ZeroMQ ROUTER socket, forwarding calls to the actors that own them.

The socket lives in one I/O thread that the gateway actor starts once the
endpoint is bound (a bind error fails ``on_start``, so the supervisor sees a
start failure; the first incarnation serves the socket the daemon listens on
since before its tree started, :mod:`nua.rpc.bound`, so that it was ready early)
and stops in ``on_stop`` and ``on_failure``. That thread waits in
``zmq.Poller`` on the socket and on the read end of a wakeup pipe: when an owning
actor resolves a call's future in its own thread, the completion is queued and
one byte written to the pipe, so the reply leaves at once. The poll timeout is
the nearest call deadline, infinite when nothing waits: an idle gateway uses no
CPU.

Hostile clients are bounded here, where their bytes arrive. Only the layouts
a client sends are accepted: ``[identity, payload]`` (DEALER) or ``[identity,
b"", payload]`` (REQ, answered on the same layout); any other message is
dropped whole and counted, never echoed. The whole message is bounded by
``[rpc] max_message_bytes`` while it is received (frames past the bound are
drained, not kept); ZeroMQ itself drops a peer sending a frame over ``[rpc]
hard_max_message_bytes`` (its MAXMSGSIZE); a message between the two gets a
too-large error with ``id: null``. Replies queued for a client that does not
read stop at ``[zmq] send_hwm`` (ROUTER_MANDATORY makes a full or vanished peer
an error instead of a silent drop): further replies are dropped, counted and
logged once per client. Connections past ``[zmq] max_clients`` are refused
(:mod:`nua.rpc.admission`).

With ``[zmq] auth = "curve"`` the socket is a CURVE server with the daemon's
key pair (:mod:`nua.rpc.credentials`), and the admission handler admits only
keys of the key store (cached in ``services.keys``, loaded here at start, after
the daemon's own account's key is registered as admin). The handler names the
key (Z85) in each connection's User-Id; each message is received with its frame
metadata, so the dispatcher knows every call's caller (:mod:`nua.rpc.access`).

Each incarnation has its own ZeroMQ context, terminated when its thread ends:
termination waits until the socket is really closed (and its last replies are
flushed, within ``LINGER``), so a restarted gateway binds the same endpoint at
once and its clients' sockets reconnect by themselves.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

import zmq

from nua.actors.directory import DB_WRITER, Directory
from nua.actors.events import EventHub
from nua.actors.health import Health
from nua.actors.supervised import ChildContext, SupervisedActor
from nua.actors.timers import Timers
from nua.curve_keys import KeyPair
from nua.model import checks
from nua.model.commands import ListKeys, MarkKeysSeen
from nua.rpc import credentials, errors, plugins, serving
from nua.rpc.access import UNAUTHENTICATED, Caller
from nua.rpc.admission import Admission, StopHandler
from nua.rpc.bound import BoundEndpoint
from nua.rpc.dispatch import Dispatcher
from nua.rpc.listener import LINGER_MS, listen
from nua.rpc.protocol import encode_error
from nua.rpc.services import Services
from nua.rpc.token_cache import TokenCache
from nua.rpc.wakeup import Wakeup
from nua.settings import Settings

# Messages taken from the socket per poll round, so completions are not starved.
RECV_BATCH = 256
# Clients whose dropped replies were logged, remembered so each is logged once (the oldest are forgotten).
LOGGED_CLIENTS = 1024
# How long the start waits for each answer of the key store (registering the owner's key, a page
# of keys): within the gateway's start timeout (5 s) for the two.
KEYS_TIMEOUT_S = 2.0
# Keys read per page when the key store is loaded.
KEYS_PAGE = 1000
# Reads of the key store at start before giving up, when a key changes during each one.
KEYS_READS = 3
# A key's last_seen_at is recorded at most this often (each record is a write).
SEEN_EVERY_S = 60.0


# pyzmq's flags are enum members: combining or converting them on every message costs
# more than the socket call itself, so the hot path uses their plain int values.
_NOBLOCK = int(zmq.NOBLOCK)
_SEND_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
# What a full (EAGAIN) or vanished (EHOSTUNREACH) peer raises under ROUTER_MANDATORY.
_UNDELIVERABLE = frozenset({errno.EAGAIN, errno.EHOSTUNREACH})
# The frames of an accepted message: identity and payload, with a REQ client's empty delimiter between.
_MAX_FRAMES = 3


@dataclass(slots=True)
class _Message:
    """A received message: the frames kept, and what was seen of all of them."""

    frames: list[bytes]
    count: int
    size: int
    delimited: bool  # the second of three frames is empty (a REQ client's delimiter)
    user: str | None = None  # the connection's ZAP User-Id (its public key, Z85), read when asked for


def _receive(sock: zmq.Socket[Any], limit: int, *, identify: bool = False) -> _Message:
    """One whole multipart message, without waiting (``zmq.Again`` when none is queued).

    With ``identify``, the message carries its connection's User-Id (metadata of
    its frames, which ``recv_multipart`` would drop).

    Frames are kept only while the message has at most three of them and is
    within ``limit`` bytes: the rest is drained and only counted, so that no
    message makes the gateway hold more than ``limit`` bytes of it. (A frame
    object carries the more-flag already: asking the socket for RCVMORE would
    cost an option lookup per frame.)
    """
    frame = sock.recv(_NOBLOCK, copy=False)
    frames = [frame.bytes]
    count, size, delimited = 1, len(frames[0]), False
    while frame.more:
        frame = sock.recv(_NOBLOCK, copy=False)
        count += 1
        length = len(frame)
        size += length
        if count == 2:
            delimited = length == 0
        if count <= _MAX_FRAMES and size <= limit:
            frames.append(frame.bytes)
    return _Message(frames, count, size, delimited, str(frame.get("User-Id")) if identify else None)


def _send_reply(sock: zmq.Socket[Any], envelope: tuple[bytes, ...], reply: bytes) -> None:
    """Send ``reply`` on ``envelope``; raises what the socket raises (a full or gone peer: ZMQError)."""
    for frame in envelope:
        sock.send(frame, _SEND_MORE)
    sock.send(reply, _NOBLOCK)


def _admit(admission: Admission, guards: list[zmq.Socket[Any]], events: dict[Any, int]) -> None:
    """Let the admission handler process what its sockets received (connection events, ZAP requests)."""
    for guard in guards:
        if guard in events:
            admission.handle(guard)


@dataclass
class _Counters:
    """What the gateway dropped or refused; written by the I/O thread, read by ``GatewayInfo``."""

    malformed_messages: int = 0  # a layout clients do not send: dropped whole
    too_large_messages: int = 0  # answered with a too-large error
    dropped_replies: int = 0  # the client did not read (send high-water mark) or was gone
    failed_messages: int = 0  # a bug while handling one message: logged, the loop went on


class _LoggedOnce:
    """Remembers the last ``size`` keys seen, so that something is logged once per key, in bounded memory."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: collections.OrderedDict[bytes, None] = collections.OrderedDict()

    def first(self, key: bytes) -> bool:
        """Whether ``key`` is new (and remember it)."""
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True


@dataclass(frozen=True)
class GatewayInfo:
    """Asks the gateway for its endpoint, method count, calls in flight, clients and drop counters."""


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
        self,
        context: ChildContext,
        settings: Settings,
        directory: Directory,
        health: Health | None = None,
        bound: BoundEndpoint | None = None,
        *,
        events: EventHub | None = None,
        timers: Timers | None = None,
        tokens: TokenCache | None = None,
    ) -> None:
        super().__init__(context)
        self.settings = settings
        self._bound = bound if bound is not None else BoundEndpoint()
        self.endpoint = self._bound.endpoint or settings.zmq.bind_endpoint
        self._io = serving.IoThread()
        self._zmq: zmq.Context[Any] | None = None
        self._socket: zmq.Socket[Any] | None = None
        self._wakeup: Wakeup | None = None
        self._lanes: serving.Lanes | None = None
        self._dispatcher: Dispatcher | None = None
        self._admission: Admission | None = None
        self._counters = _Counters()
        self._logged_drops = _LoggedOnce(LOGGED_CLIENTS)
        self.services = Services(
            settings,
            directory,
            health=health or Health(),
            events=events or EventHub(),
            tokens=tokens if tokens is not None else TokenCache(),
        )
        self._curve = settings.zmq.curve
        self._server_key: KeyPair | None = None
        # Resolves the long-poll reads of events that time out (none: events_read never waits).
        self._timers = timers
        # Asked from the actor thread (tests: sys_fault_authenticator), done by the I/O thread.
        self._stop_handler = threading.Event()
        # When each key's last_seen_at was last recorded (bounded by the keys registered).
        self._seen: dict[str, float] = {}

    # -- lifecycle ----------------------------------------------------------------------

    def setup(self) -> None:
        # cleanup is not called when setup raises: clean up here.
        try:
            self._setup()
        except BaseException:
            self._teardown_unstarted()
            raise
        self.log.info("gateway_listening", endpoint=self.services.endpoint, methods=len(self.services.registry))
        if not self._curve:
            self.log.warning(
                "authentication_off",
                endpoint=self.services.endpoint,
                reason='[zmq] auth = "none": every local account that can reach the endpoint is admin',
            )

    def _setup(self) -> None:
        plugins.build(self.services, log=self.log)
        self._wakeup = Wakeup()
        self._lanes = serving.Lanes.start("nua-rpc", self.services, self.log, self._timers)
        self._dispatcher = serving.dispatcher(self.services, self._lanes, self._wakeup.ring, self.log)
        if self._curve:
            self._server_key = self._load_keys()
        # The first incarnation takes over the socket the daemon listens on since before its tree started.
        prebound, self._bound.prebound = self._bound.prebound, None
        listener = listen(
            self.settings,
            self.endpoint,
            self._server_key,
            authenticate=self._authenticate if self._curve else None,
            log=self.log,
            prebound=prebound,
        )
        self._zmq, self._socket, self._admission = listener.context, listener.socket, listener.admission
        self.services.endpoint = listener.endpoint
        self._bound.endpoint = listener.endpoint
        # Handing the socket to another thread is allowed with a memory barrier; starting the thread is one.
        self._io.start(self._io_main, f"nua-gateway-io-{self.context.generation}")

    def _load_keys(self) -> KeyPair:
        """The server key pair; the owner's key registered as admin, and every key in the cache."""
        pair = credentials.server_pair(self.settings)
        owner = credentials.owner_pair(self.settings)
        if self._bound.keys is not None:
            self.services.keys = self._bound.keys  # one cache for every incarnation: see KeyCache
        try:
            self._wait(self.services.ask(DB_WRITER, checks.key_ensure(credentials.owner_name(), owner.public, "admin")))
            self._reload_keys()
        except Exception as exc:
            previous = self._bound.keys
            if previous is None:
                raise  # the first start: the daemon's start fails, saying why
            self.services.keys = previous
            self.log.error("client_keys_not_reloaded", error=f"{type(exc).__name__}: {exc}", keys=len(previous))
        else:
            self.log.info("client_keys_loaded", keys=len(self.services.keys), server_key=pair.public)
        self._bound.keys = self.services.keys
        return pair

    def _reload_keys(self) -> None:
        """Load the cache from the key store, again if a key changed during the read (see KeyCache)."""
        for _ in range(KEYS_READS):
            read_at = self.services.keys.version
            if self.services.keys.load(self._read_keys(), read_at=read_at):
                return
        msg = f"the key store changed during each of {KEYS_READS} reads"
        raise RuntimeError(msg)

    def _read_keys(self) -> list[dict[str, Any]]:
        return serving.read_all(self.services, lambda after: ListKeys(limit=KEYS_PAGE, after=after), KEYS_TIMEOUT_S)

    @staticmethod
    def _wait(future: Any) -> Any:
        return future.result(timeout=KEYS_TIMEOUT_S)

    def _authenticate(self, raw_public_key: bytes) -> str | None:
        """The name of a connecting client's key (I/O thread); its last_seen_at recorded now and then."""
        name = self.services.keys.name_of(raw_public_key)
        if name is not None:
            now = time.monotonic()
            last = self._seen.get(name)
            if last is None or now - last >= SEEN_EVERY_S:
                self._seen[name] = now
                with contextlib.suppress(errors.UnavailableError):  # a restarting writer: next time
                    self.services.ask(DB_WRITER, MarkKeysSeen((name,)))
        return name

    def _teardown_unstarted(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        self._finish()

    def cleanup(self, error: BaseException | None) -> None:
        self._shutdown()
        if error is None:
            self.log.info("gateway_stopped", endpoint=self.services.endpoint)

    def _shutdown(self) -> None:
        stopped = self._io.stop(self._wakeup.ring if self._wakeup is not None else None, self.log)
        if stopped and not self._io.started:
            self._finish()  # the thread never started: nothing else releases what setup made

    def _finish(self) -> None:
        """Release what the I/O thread does not own: the pools, the pipe, the context."""
        if self._lanes is not None:
            self._lanes.shutdown()
            self._lanes = None
        if self._admission is not None:
            self._admission.close()
            self._admission = None
        if self._wakeup is not None:
            self._wakeup.close()
            self._wakeup = None
        if self._zmq is not None:
            self._zmq.term()  # waits until the socket is closed: the endpoint is free again
            self._zmq = None

    def on_receive(self, message: Any) -> Any:
        match message:
            case GatewayInfo():
                dispatcher, admission = self._dispatcher, self._admission
                return {
                    "endpoint": self.services.endpoint,
                    "methods": len(self.services.registry),
                    "in_flight": dispatcher.in_flight if dispatcher is not None else 0,
                    "clients": admission.clients if admission is not None else 0,
                    "refused_clients": admission.refused if admission is not None else 0,
                    "unknown_keys": admission.unknown_keys if admission is not None else 0,
                    "server_key": self._server_key.public if self._server_key is not None else None,
                    **dataclasses.asdict(self._counters),
                }
            case serving.IoFailed(error):
                raise serving.IoThreadError(error)
            case StopHandler():
                self._stop_handler.set()
                if self._wakeup is not None:
                    self._wakeup.ring()
                return None
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
            if not self._io.stopping.is_set():
                self.actor_ref.tell(serving.IoFailed(f"{type(exc).__name__}: {exc}"))
        finally:
            sock.close(linger=LINGER_MS)
            self._socket = None
            self._finish()

    def _serve(self, sock: zmq.Socket[Any], wakeup: Wakeup, dispatcher: Dispatcher) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(wakeup.read_fd, zmq.POLLIN)
        admission = self._admission
        assert admission is not None  # noqa: S101 - set in _setup
        assert self._lanes is not None  # noqa: S101 - set in _setup
        call_lines = self._lanes.call_lines
        guards = admission.sockets()
        for guard in guards:
            poller.register(guard, zmq.POLLIN)
        limit = self.settings.rpc.max_message_bytes
        timeout_ms: int | None = None
        while not self._io.stopping.is_set():
            events = dict(poller.poll(timeout_ms))
            if wakeup.read_fd in events:
                wakeup.drain()
                if self._stop_handler.is_set():
                    guards = self._stop_admission_handler(poller, admission, guards)
            dispatcher.process_completions()
            if sock in events:
                # Ask the socket whether more is queued rather than catch zmq.Again:
                # an exception per wakeup costs more than the whole check.
                for _ in range(RECV_BATCH):
                    try:
                        message = _receive(sock, limit, identify=self._curve)
                    except zmq.Again:  # the poll's news was stale
                        break
                    self._on_message_guarded(sock, message, limit, dispatcher)
                    if not cast("int", sock.getsockopt(_EVENTS)) & _POLLIN:
                        break
            if len(events) > 1 or sock not in events:
                _admit(admission, guards, events)
            next_deadline = dispatcher.expire()
            call_lines.flush()  # the lines of this turn's answers, handed over at once
            # Round up: waking a hair early would only poll again.
            timeout_ms = None if next_deadline is None else int(next_deadline * 1000) + 1

    def _stop_admission_handler(
        self, poller: zmq.Poller, admission: Admission, guards: list[zmq.Socket[Any]]
    ) -> list[zmq.Socket[Any]]:
        """Close the ZAP handler (tests: as if it had died); the guards left to poll."""
        self._stop_handler.clear()
        for guard in guards:
            poller.unregister(guard)
        admission.stop_handler()
        self.log.warning("zap_handler_stopped", reason="fault injected: new connections are refused from now on")
        left = admission.sockets()
        for guard in left:
            poller.register(guard, zmq.POLLIN)
        return left

    def _refuse_queued(self, sock: zmq.Socket[Any]) -> None:
        """Answer the calls already queued on the socket: they were not run, a retry is safe."""
        error = errors.UnavailableError("the gateway is restarting; retry", {"dispatched": False})
        limit = self.settings.rpc.max_message_bytes
        for _ in range(RECV_BATCH * 4):
            try:
                message = _receive(sock, limit)
            except zmq.Again:
                return
            envelope = self._envelope(message, limit)
            if envelope is not None:
                self._send(sock, envelope, encode_error(_request_id(message.frames[-1]), error))

    def _envelope(self, message: _Message, limit: int) -> tuple[bytes, ...] | None:
        """The frames to reply on, or ``None`` for a message to drop (a layout clients do not send)."""
        if message.count == 2:
            return (message.frames[0],)
        if message.count == _MAX_FRAMES and message.delimited:
            return (message.frames[0], b"")
        self._counters.malformed_messages += 1
        if self._counters.malformed_messages == 1:
            self.log.warning("rpc_malformed_message_dropped", frames=message.count, bytes=message.size, limit=limit)
        return None

    def _send(self, sock: zmq.Socket[Any], envelope: tuple[bytes, ...], reply: bytes) -> None:
        """Send one reply; a client that does not read (or is gone) loses it, counted and logged once."""
        try:
            _send_reply(sock, envelope, reply)
        except zmq.ZMQError as exc:
            if exc.errno not in _UNDELIVERABLE:
                raise
            self._counters.dropped_replies += 1
            client = envelope[0]
            if self._logged_drops.first(client):
                reason = "the client does not read its replies" if exc.errno == errno.EAGAIN else "the client is gone"
                self.log.warning(
                    "rpc_reply_dropped",
                    client=client.hex(),
                    reason=reason,
                    send_hwm=self.settings.zmq.send_hwm,
                    dropped_total=self._counters.dropped_replies,
                )

    def _on_message_guarded(self, sock: zmq.Socket[Any], message: _Message, limit: int, dispatcher: Dispatcher) -> None:
        """:meth:`_on_message`, whose failure costs that message only, never the I/O loop."""
        try:
            self._on_message(sock, message, limit, dispatcher)
        except zmq.ContextTerminated:
            raise
        except Exception as exc:
            self._counters.failed_messages += 1
            self.log.exception("rpc_message_failed", error=f"{type(exc).__name__}: {exc}")

    def _on_message(self, sock: zmq.Socket[Any], message: _Message, limit: int, dispatcher: Dispatcher) -> None:
        envelope = self._envelope(message, limit)
        if envelope is None:
            return

        def send(reply: bytes) -> None:
            self._send(sock, envelope, reply)

        if message.size > limit:
            self._counters.too_large_messages += 1
            error = errors.TooLargeError(
                f"the message is {message.size} bytes, over rpc.max_message_bytes ({limit})",
                {"max_message_bytes": limit},
            )
            send(encode_error(None, error))
            return
        caller = self._caller(message)
        if caller is None:
            gone = errors.ForbiddenError(
                f"the key {message.user!r} of this connection was removed; connect with a registered key",
                {"key": message.user},
            )
            send(encode_error(_request_id(message.frames[-1]), gone))
            return
        dispatcher.handle(message.frames[-1], send, envelope[0], caller)

    def _caller(self, message: _Message) -> Caller | None:
        """Who sent ``message``: its key's caller (``None`` once the key is removed); anyone without CURVE."""
        if not self._curve:
            return UNAUTHENTICATED
        return self.services.keys.caller(message.user or "")


__all__ = ["BoundEndpoint", "Gateway", "GatewayInfo"]
