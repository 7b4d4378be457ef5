"""The HTTP server: an actor of the root supervisor serving JSON-RPC, the event stream and the console.

Built on ``h11`` (a maintained, pure-Python HTTP/1.1 state machine without I/O of
its own) driven by one I/O thread's ``selectors`` loop, as the ZeroMQ gateway
drives its socket: one thread for every connection, event streams included, so
a console left open costs a socket and a few bytes per event rather than a
thread; the dispatcher (:func:`nua.rpc.serving.dispatcher`) runs in that thread
exactly as in the gateway, and completions ring the same kind of wakeup pipe.
Idle, it sleeps in ``select`` until a connection, a completion, an event or the
next heartbeat.

Off by default (``[http] port = -1``). Like the gateway, a bind error fails the
start; a restarted incarnation binds the port the first one got (``port = 0``),
and the token cache and the console sessions outlive incarnations
(:class:`HttpShared`). Connections past ``[http] max_clients`` get 503 and are
closed; a connection idle :data:`IDLE_S` (or that has not sent a whole request
head within it) is closed.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nua.actors.directory import Directory
from nua.actors.events import EventHub
from nua.actors.health import Health
from nua.actors.supervised import ChildContext, SupervisedActor
from nua.actors.timers import Timers
from nua.http import site
from nua.http.connection import Connection, Malformed
from nua.http.event_stream import EventStreams
from nua.http.guard import Refused
from nua.http.replies import refuse
from nua.http.request import Request
from nua.http.sessions import Sessions
from nua.model.commands import ListTokens
from nua.rpc import plugins, serving
from nua.rpc.bound import BoundEndpoint
from nua.rpc.dispatch import Dispatcher
from nua.rpc.services import Services
from nua.rpc.token_cache import TokenCache
from nua.rpc.wakeup import Wakeup
from nua.settings import Settings

# A connection idle this long between requests (or this slow to send one) is closed.
IDLE_S = 60.0
# How long the start waits for each page of tokens from the DB reader.
TOKENS_TIMEOUT_S = 2.0
TOKENS_PAGE = 1000
TOKENS_READS = 3
BACKLOG = 128
_LISTEN, _WAKEUP = "listen", "wakeup"


@dataclass
class HttpShared:
    """What outlives one incarnation: the port bound, the token cache, the console sessions, the key cache."""

    tokens: TokenCache = field(default_factory=TokenCache)
    sessions: Sessions = field(default_factory=Sessions)
    # The gateway's: its key cache, so that key_add over HTTP is seen by ZeroMQ at once.
    gateway: BoundEndpoint | None = None
    port: int | None = None
    tokens_loaded: bool = False


@dataclass(frozen=True)
class HttpInfo:
    """Asks the HTTP server for its URL and what it holds (connections, event streams, sessions)."""


class HttpServer(SupervisedActor):
    """Binds ``[http] address:port`` and serves it from its I/O thread."""

    def __init__(
        self,
        context: ChildContext,
        settings: Settings,
        directory: Directory,
        health: Health,
        shared: HttpShared,
        *,
        events: EventHub | None = None,
        timers: Timers | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(context)
        self.settings = settings
        self.shared = shared
        self.events = events if events is not None else EventHub()
        self.clock = clock
        # Resolves the long-poll reads of events_read that time out (none: events_read never waits).
        self._timers = timers
        self.services = Services(settings, directory, health=health, tokens=shared.tokens, events=self.events)
        if shared.gateway is not None:  # one key cache, and sys_status names the ZeroMQ endpoint as there
            if shared.gateway.keys is not None:  # None with [zmq] auth = "none": the gateway loads none
                self.services.keys = shared.gateway.keys
            self.services.endpoint = shared.gateway.endpoint or ""
        self.url = ""
        self._io = serving.IoThread()
        self._listener: socket.socket | None = None
        self._wakeup: Wakeup | None = None
        self._lanes: serving.Lanes | None = None
        self._tls: ssl.SSLContext | None = None
        self._connections: set[Connection] = set()
        self._selector: selectors.BaseSelector | None = None
        self._site: site.Site | None = None
        self._streams: EventStreams | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def setup(self) -> None:
        try:
            self._setup()
        except BaseException:
            self._finish()
            raise
        self.log.info(
            "http_listening", url=self.url, methods=len(self.services.registry), tokens=len(self.shared.tokens)
        )

    def _setup(self) -> None:
        plugins.build(self.services, log=self.log)
        self._load_tokens()
        http = self.settings.http
        if http.tls:
            self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                self._tls.load_cert_chain(http.tls_cert, http.tls_key)
            except (OSError, ssl.SSLError) as exc:
                msg = f"cannot load [http] tls_cert {http.tls_cert} and tls_key {http.tls_key}: {exc}"
                raise OSError(msg) from None
        self._wakeup = Wakeup()
        self._lanes = serving.Lanes.start("nua-http", self.services, self.log, self._timers)
        dispatcher = serving.dispatcher(self.services, self._lanes, self._wakeup.ring, self.log)
        self._streams = EventStreams(
            self.events, self._wakeup.ring, self.clock, self.shared.tokens, self.shared.sessions
        )
        self._site = site.Site(
            http,
            dispatcher,
            self.shared.tokens,
            self.shared.sessions,
            self._streams,
            site.load_console(),
            self.clock,
            self._after_reply,
        )
        self._listener = self._bind()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, _LISTEN)
        self._selector.register(self._wakeup.read_fd, selectors.EVENT_READ, _WAKEUP)
        self._io.start(lambda: self._io_main(dispatcher), f"nua-http-io-{self.context.generation}")

    def _load_tokens(self) -> None:
        """The token cache from the key store; an incarnation after the first keeps it through an outage."""
        try:
            self._read_tokens()
        except Exception as exc:
            if not self.shared.tokens_loaded:
                raise
            tokens = len(self.shared.tokens)
            self.log.error("http_tokens_not_reloaded", error=f"{type(exc).__name__}: {exc}", tokens=tokens)
        else:
            self.shared.tokens_loaded = True

    def _read_tokens(self) -> None:
        """Read every token, again if one changed during the read (see TokenCache.load)."""
        tokens = self.shared.tokens
        for _ in range(TOKENS_READS):
            read_at = tokens.version
            rows = serving.read_all(
                self.services, lambda after: ListTokens(limit=TOKENS_PAGE, after=after), TOKENS_TIMEOUT_S
            )
            if tokens.load(rows, read_at=read_at):
                return
        msg = f"the tokens changed during each of {TOKENS_READS} reads"
        raise RuntimeError(msg)

    def _bind(self) -> socket.socket:
        http = self.settings.http
        address = http.address.strip("[]")
        port = self.shared.port if self.shared.port is not None else http.port
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            listener = socket.create_server((address, port), family=family, backlog=BACKLOG)
        except OSError as exc:
            msg = f"cannot bind the HTTP address {http.address}:{port}: {exc.strerror or exc}"
            raise OSError(exc.errno, msg) from None
        listener.setblocking(False)  # noqa: FBT003 - the socket API
        bound = listener.getsockname()[1]
        self.shared.port = bound
        host = f"[{address}]" if family == socket.AF_INET6 else address
        self.url = f"{'https' if http.tls else 'http'}://{host}:{bound}"
        return listener

    def cleanup(self, error: BaseException | None) -> None:
        stopped = self._io.stop(self._wakeup.ring if self._wakeup is not None else None, self.log)
        if stopped and not self._io.started:
            self._finish()  # the thread never started: nothing else releases what setup made
        if error is None:
            self.log.info("http_stopped", url=self.url)

    def _finish(self) -> None:
        """Release everything: connections, the listener, the pools, the pipe."""
        for conn in list(self._connections):
            conn.close()
        self._connections.clear()
        if self._streams is not None:
            self._streams.close()
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._lanes is not None:
            self._lanes.shutdown()
            self._lanes = None
        if self._wakeup is not None:
            self._wakeup.close()
            self._wakeup = None

    def on_receive(self, message: Any) -> Any:
        match message:
            case HttpInfo():
                return {
                    "url": self.url,
                    "connections": len(self._connections),
                    "event_streams": len(self._streams) if self._streams is not None else 0,
                    "sessions": len(self.shared.sessions),
                    "tokens": len(self.shared.tokens),
                }
            case serving.IoFailed(error):
                raise serving.IoThreadError(error)
            case _:
                return super().on_receive(message)

    # -- the I/O thread -------------------------------------------------------------------

    def _io_main(self, dispatcher: Dispatcher) -> None:
        try:
            self._serve(dispatcher)
            from nua.rpc import errors  # noqa: PLC0415 - only when stopping

            dispatcher.abort_all(
                errors.UnavailableError("the HTTP server stopped before the reply; the call may have run")
            )
            for conn in list(self._connections):
                conn.flush()
        except Exception as exc:  # reported to the actor, which fails and is restarted
            self.log.exception("http_io_failed")
            if not self._io.stopping.is_set():
                self.actor_ref.tell(serving.IoFailed(f"{type(exc).__name__}: {exc}"))
        finally:
            self._finish()

    def _serve(self, dispatcher: Dispatcher) -> None:
        selector, wakeup, streams = self._selector, self._wakeup, self._streams
        assert selector is not None  # noqa: S101 - set in _setup
        assert wakeup is not None  # noqa: S101
        assert streams is not None  # noqa: S101
        assert self._lanes is not None  # noqa: S101
        call_lines = self._lanes.call_lines
        timeout: float | None = None
        while not self._io.stopping.is_set():
            for key, mask in selector.select(timeout):
                if key.data == _WAKEUP:
                    wakeup.drain()
                elif key.data == _LISTEN:
                    self._accept()
                else:
                    self._on_ready(key.data, mask)
            dispatcher.process_completions()
            for conn in streams.pump():
                self._settle(conn)
            now = self.clock()
            touched, next_stream = streams.tick(now)
            for conn in touched:
                self._settle(conn)
            next_idle = self._close_idle(now)
            waits = (dispatcher.expire(), _after(next_stream, now), _after(next_idle, now))
            call_lines.flush()  # the lines of this turn's answers, handed over at once
            deadlines = [wait for wait in waits if wait is not None]
            timeout = min(deadlines) if deadlines else None

    def _accept(self) -> None:
        assert self._listener is not None  # noqa: S101 - serving
        for _ in range(BACKLOG):
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: the next round tries again
                self.log.warning("http_accept_failed", error=str(exc))
                return
            sock.setblocking(False)  # noqa: FBT003 - the socket API
            # Each response leaves in one write; an event must not wait for the ACK of the one before.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            wrapped: socket.socket | ssl.SSLSocket = sock
            if self._tls is not None:
                wrapped = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            conn = Connection(wrapped, str(peer[0]), self.settings.rpc.max_message_bytes, self.clock())
            limit = self.settings.http.max_clients
            overflow = sum(1 for held in self._connections if held.overflow)
            if len(self._connections) - overflow >= limit:
                if overflow >= limit:  # as many waiting to be refused as served: just closed
                    conn.close()
                    continue
                conn.overflow = True  # read its request, then answer 503 (closing at once would reset it)
            self._connections.add(conn)
            self._watch(conn, selectors.EVENT_READ)

    def _on_ready(self, conn: Connection, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            self._answer(conn, conn.read(self.clock()))
        self._settle(conn)

    def _after_reply(self, conn: Connection) -> None:
        """A response queued after its request's turn (an RPC reply): answer the next pipelined request."""
        self._answer(conn, conn.next_requests())
        self._settle(conn)

    def _answer(self, conn: Connection, requests: list[Request | Malformed]) -> None:
        """Handle ``requests``, then each request already read behind them, while each is answered at once."""
        assert self._site is not None  # noqa: S101 - serving
        while requests:
            for request in requests:
                if conn.overflow:
                    limit = self.settings.http.max_clients
                    refused = Refused(503, f"too many connections ([http] max_clients = {limit}); retry")
                    refuse(conn, refused, close=True)
                else:
                    self._site.handle(conn, request)
            requests = conn.next_requests()  # none while this one waits (an RPC call) or streams

    def _settle(self, conn: Connection) -> None:
        """Write what can be written; drop a closed connection; else watch it for what it waits for.

        Reading while a request is in hand would only pile the next ones up (and a
        level-triggered selector would spin on them): its socket is read again once
        the request is answered. Writability is watched while output waits.
        """
        if conn not in self._connections:
            return  # dropped already
        conn.flush()
        if conn.closed:
            self._drop(conn)
            return
        reading = selectors.EVENT_READ if conn.streaming or not conn.busy else 0
        self._watch(conn, reading | (selectors.EVENT_WRITE if conn.output else 0))

    def _watch(self, conn: Connection, events: int) -> None:
        """Have the selector watch ``conn`` for ``events`` (0: not at all)."""
        assert self._selector is not None  # noqa: S101 - serving
        if events == conn.watching:
            return
        if events == 0:
            self._selector.unregister(conn.sock)
        elif conn.watching == 0:
            self._selector.register(conn.sock, events, conn)
        else:
            self._selector.modify(conn.sock, events, conn)
        conn.watching = events

    def _drop(self, conn: Connection) -> None:
        assert self._streams is not None  # noqa: S101
        self._streams.forget(conn)
        self._connections.discard(conn)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._watch(conn, 0)
        conn.close()

    def _close_idle(self, now: float) -> float | None:
        """Close connections idle past :data:`IDLE_S` (not streams, not those waiting for a reply)."""
        nearest: float | None = None
        for conn in list(self._connections):
            if conn.streaming or (conn.busy and not conn.handshaking):
                continue
            ends = conn.last_active + IDLE_S
            if now >= ends:
                conn.closed = True
                self._drop(conn)
            else:
                nearest = ends if nearest is None else min(nearest, ends)
        return nearest


def _after(deadline: float | None, now: float) -> float | None:
    return None if deadline is None else max(0.0, deadline - now) + 0.001


__all__ = ["HttpInfo", "HttpServer", "HttpShared"]
