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
  connection; 400 refuses it: libzmq sends the peer an ERROR command and closes
  the connection. libzmq takes that as a protocol error, after which a
  connecting socket does not reconnect: the refused client's messages are
  never delivered (nua's client reports that no connection was made within its
  timeout); a new connection (the next CLI run) is asked again.

A connection is counted from its acceptance, before its handshake: the one
asking is among those open, so it is refused when more than ``max_clients`` are.
A connection that never completes its handshake holds its slot until libzmq
drops it, after the handshake interval (as it holds a descriptor until then).
Before answering, the handler takes the monitor's pending events, so that the
connection asking (accepted before it could ask) is counted.

Both sockets belong to the thread that serves the guarded socket (a socket
belongs to one thread): it polls :meth:`Admission.sockets` beside its own and
calls :meth:`Admission.handle`. The same handler is the place where client
credentials will be checked (CURVE).
"""

from __future__ import annotations

from typing import Any

import structlog
import zmq
from zmq.utils.monitor import parse_monitor_message

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = "nua"
ZAP_VERSION = b"1.0"
# A ZAP request: version, request id, domain, address, identity, mechanism, credentials...
_ZAP_REQUEST_FRAMES = 6
_ACCEPTED = int(zmq.EVENT_ACCEPTED)
_DISCONNECTED = int(zmq.EVENT_DISCONNECTED)
_MONITORED = _ACCEPTED | _DISCONNECTED
# Events and ZAP requests handled per call, so that a storm of connections cannot starve replies.
_BATCH = 256


class Admission:
    """Counts a socket's clients and refuses new connections past ``max_clients``."""

    def __init__(
        self,
        context: zmq.Context[Any],
        max_clients: int,
        *,
        handshake_s: float,
        log: structlog.stdlib.BoundLogger | None = None,
    ) -> None:
        self.max_clients = max_clients
        self.handshake_s = handshake_s
        self.log = log or structlog.stdlib.get_logger("nua.rpc.admission")
        # The descriptors of the connections open (bounded by the process's descriptors).
        self._open: set[int] = set()
        self.refused = 0
        self._zap: zmq.Socket[Any] = context.socket(zmq.REP)
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
        # A connection that never completes its handshake is dropped after this, freeing its descriptor.
        sock.setsockopt(zmq.HANDSHAKE_IVL, max(1, int(self.handshake_s * 1000)))
        self._monitor = sock.get_monitor_socket(_MONITORED)

    def sockets(self) -> list[zmq.Socket[Any]]:
        """The sockets to poll for input; pass those with input to :meth:`handle`."""
        return [self._zap] if self._monitor is None else [self._zap, self._monitor]

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

    def close(self) -> None:
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None
        self._zap.close(linger=0)

    # -- inside -----------------------------------------------------------------------------

    def _answer(self, request: list[bytes]) -> None:
        if len(request) < _ZAP_REQUEST_FRAMES or request[0] != ZAP_VERSION:
            self.log.warning("zap_request_malformed", frames=len(request))
            # A REP socket must answer before it can receive again.
            self._zap.send_multipart([ZAP_VERSION, b"", b"500", b"malformed ZAP request", b"", b""])
            return
        request_id = request[1]
        self._take_events()  # count the connection asking: it was accepted before it asked
        if self.clients > self.max_clients:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                self.log.warning("client_refused", max_clients=self.max_clients, refused=self.refused)
            reply = [ZAP_VERSION, request_id, b"400", b"too many clients", b"", b""]
        else:
            reply = [ZAP_VERSION, request_id, b"200", b"OK", b"", b""]
        self._zap.send_multipart(reply)

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


__all__ = ["ZAP_DOMAIN", "ZAP_ENDPOINT", "Admission"]
