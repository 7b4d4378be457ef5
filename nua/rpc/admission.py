"""Admission of connections to the gateway's socket: at most ``max_clients`` at once.

libzmq has no option bounding how many peers a listening socket accepts; two of
its facilities make one:

- a socket monitor reports each connection accepted and each disconnection,
  both with the connection's file descriptor as the event's value: the set of
  descriptors accepted and not disconnected is exactly the connections open.
  (Counting handshakes instead cannot be exact: a success carries no
  descriptor, and libzmq does not report every failed handshake before its
  disconnection. A peer greeting in ZMTP 1.0 or 2.0, which libzmq refuses
  when ZAP is on, or sending a malformed frame during its handshake, ends in a
  ``protocol_error`` without a "handshake failed" event; counting
  ``succeeded - (disconnected - failed)`` let any local account drive the count
  down with such connections and connect any number of clients);
- a ZAP handler (ZeroMQ RFC 27) bound at ``inproc://zeromq.zap.01`` in the
  socket's context is asked about every new connection during its handshake.
  With the NULL mechanism (no CURVE) libzmq asks it only when the socket has a
  ZAP domain set, so :meth:`Admission.guard` sets one. Status 200 admits the
  connection; 400 (too many clients, or an unknown key) refuses it: libzmq
  sends the peer an ERROR command carrying the status and closes the connection.
  libzmq takes that as a protocol error, after which a connecting socket does
  not reconnect: the refused client's messages are
  never delivered (nua's client sees the status among its socket's handshake
  events and says why at once); a new connection (the next CLI run) is asked again.

A connection is counted from its acceptance, before its handshake: the one
asking is among those open, so it is refused when more than ``max_clients`` are.
A connection that never completes its handshake holds its slot until libzmq
drops it, after the handshake interval (as it holds a descriptor until then).
Before answering, the handler takes the monitor's pending events, so that the
connection asking (accepted before it could ask) is counted.

Both sockets belong to the thread that serves the guarded socket (a socket
belongs to one thread): it polls :meth:`Admission.sockets` beside its own and
calls :meth:`Admission.handle`.

The same handler checks client credentials. With CURVE (``[zmq] auth =
"curve"``) a ZAP request carries the client's public key, which the handshake
has already proven the client holds the secret of; the handler admits it only
if ``authenticate`` knows the key (the gateway's cache of the key store), and
answers with the key itself (Z85) as User-Id: libzmq attaches it to every message
of that connection, and the gateway looks each message's caller up by that key.
A name would not do: a key removed and its name given to another key would let
the old key's open connections go on under the new key's role. A request the
handler cannot judge (malformed, a mechanism other than CURVE, a failure of its
own) is refused, never admitted; and the guarded socket sets
``ZAP_ENFORCE_DOMAIN``, so that a connection is refused when no handler is bound
at all (libzmq otherwise accepts any key when nothing answers: libzmq #2594).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
import zmq
from zmq.utils import z85
from zmq.utils.monitor import parse_monitor_message

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = "nua"
ZAP_VERSION = b"1.0"
# A ZAP request: version, request id, domain, address, identity, mechanism, credentials...
_ZAP_REQUEST_FRAMES = 6
_CURVE = b"CURVE"
# A CURVE ZAP request's credentials: the client's 32-byte public key.
_CURVE_KEY_BYTES = 32
# What a refused key is logged as at most once per this many refusals (a storm logs little).
_LOG_EVERY = 1000
_ACCEPTED = int(zmq.EVENT_ACCEPTED)
_DISCONNECTED = int(zmq.EVENT_DISCONNECTED)
_MONITORED = _ACCEPTED | _DISCONNECTED
# Events and ZAP requests handled per call, so that a storm of connections cannot starve replies.
_BATCH = 256


@dataclass(frozen=True)
class StopHandler:
    """Told to the gateway (``sys_fault_authenticator``, tests only): close its ZAP handler, as if it had died."""


class Admission:
    """Counts a socket's clients and refuses new connections past ``max_clients``."""

    def __init__(
        self,
        context: zmq.Context[Any],
        max_clients: int,
        *,
        handshake_s: float,
        authenticate: Callable[[bytes], str | None] | None = None,
        log: structlog.stdlib.BoundLogger | None = None,
    ) -> None:
        """``authenticate`` maps a client's raw CURVE public key to its key's name (``None``: unknown).

        Given, only CURVE clients with a known key are admitted; without it (``[zmq]
        auth = "none"``), any client within ``max_clients``.
        """
        self.max_clients = max_clients
        self.authenticate = authenticate
        self.handshake_s = handshake_s
        self.log = log or structlog.stdlib.get_logger("nua.rpc.admission")
        # The descriptors of the connections open (bounded by the process's descriptors).
        self._open: set[int] = set()
        self.refused = 0
        self.unknown_keys = 0
        self._zap: zmq.Socket[Any] | None = context.socket(zmq.REP)
        self._zap.setsockopt(zmq.LINGER, 0)
        self._zap.bind(ZAP_ENDPOINT)
        self._monitor: zmq.Socket[Any] | None = None

    @property
    def clients(self) -> int:
        """Connections open, those still in their handshake included (read from any thread)."""
        return len(self._open)

    def guard(self, sock: zmq.Socket[Any]) -> None:
        """Make every connection to ``sock`` ask this handler; call before ``sock`` binds."""
        sock.setsockopt_string(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        # No handler bound (it stopped): refuse every connection rather than admit it unasked.
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        # A connection that never completes its handshake is dropped after this, freeing its descriptor.
        sock.setsockopt(zmq.HANDSHAKE_IVL, max(1, int(self.handshake_s * 1000)))
        self._monitor = sock.get_monitor_socket(_MONITORED)

    def sockets(self) -> list[zmq.Socket[Any]]:
        """The sockets to poll for input; pass those with input to :meth:`handle`."""
        return [sock for sock in (self._zap, self._monitor) if sock is not None]

    def handle(self, sock: zmq.Socket[Any]) -> None:
        """Process what is queued on ``sock`` (one of :meth:`sockets`), without waiting."""
        for _ in range(_BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if sock is self._zap:
                self._answer(frames)
            else:
                self._on_event(frames)

    def stop_handler(self) -> None:
        """Close the ZAP handler's socket: from now on every new connection is refused (tests prove it)."""
        if self._zap is not None:
            self._zap.close(linger=0)
            self._zap = None

    def close(self) -> None:
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None
        self.stop_handler()

    # -- inside -----------------------------------------------------------------------------

    def _answer(self, request: list[bytes]) -> None:
        # A REP socket must answer before it can receive again, and only an answer of 200 admits.
        assert self._zap is not None  # noqa: S101 - handle() is called only with a socket of sockets()
        if len(request) < _ZAP_REQUEST_FRAMES or request[0] != ZAP_VERSION:
            self.log.warning("zap_request_malformed", frames=len(request))
            self._zap.send_multipart([ZAP_VERSION, b"", b"500", b"malformed ZAP request", b"", b""])
            return
        request_id = request[1]
        try:
            status, text, user = self._judge(request)
        except Exception as exc:  # a handler that cannot judge refuses
            self.log.exception("zap_handler_failed", error=f"{type(exc).__name__}: {exc}")
            status, text, user = b"500", b"internal error", b""
        self._zap.send_multipart([ZAP_VERSION, request_id, status, text, user, b""])

    def _judge(self, request: list[bytes]) -> tuple[bytes, bytes, bytes]:
        """The ZAP status, its text and the User-Id for one request."""
        self._take_events()  # count the connection asking: it was accepted before it asked
        if self.clients > self.max_clients:
            self.refused += 1
            if self.refused == 1 or self.refused % _LOG_EVERY == 0:
                self.log.warning("client_refused", max_clients=self.max_clients, refused=self.refused)
            # 400, not 300 ("temporary"): libzmq sends no ERROR for a 300, so the client could not tell.
            return b"400", b"too many clients", b""
        if self.authenticate is None:
            return b"200", b"OK", b""
        mechanism = request[5]
        credentials = request[6] if len(request) > _ZAP_REQUEST_FRAMES else b""
        if mechanism != _CURVE or len(credentials) != _CURVE_KEY_BYTES:
            return b"400", b"CURVE required", b""
        name = self.authenticate(credentials)
        if name is None:
            self.unknown_keys += 1
            if self.unknown_keys == 1 or self.unknown_keys % _LOG_EVERY == 0:
                self.log.warning(
                    "client_key_unknown",
                    public_key=z85.encode(credentials).decode("ascii"),
                    address=request[3].decode("utf-8", "replace")[:64],
                    refused=self.unknown_keys,
                )
            return b"400", b"unknown key", b""
        return b"200", b"OK", z85.encode(credentials)

    def _take_events(self) -> None:
        """Process every event the monitor has queued."""
        while self._monitor is not None:
            try:
                frames = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._on_event(frames)

    def _on_event(self, frames: list[bytes]) -> None:
        event = parse_monitor_message(frames)
        if event["event"] == _ACCEPTED:
            self._open.add(int(event["value"]))
        elif event["event"] == _DISCONNECTED:
            self._open.discard(int(event["value"]))


__all__ = ["ZAP_DOMAIN", "ZAP_ENDPOINT", "Admission", "StopHandler"]
