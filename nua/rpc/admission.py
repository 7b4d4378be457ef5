"""Admission of connections to the gateway's socket: at most ``max_clients`` at once.

libzmq has no option bounding how many peers a listening socket accepts; two of
its facilities make one:

- a socket monitor reports each connection whose handshake succeeded, each
  whose handshake failed, and each disconnection. libzmq reports exactly one
  handshake failure before the disconnection of a connection that never
  completed its handshake (``stream_engine_base_t::error``), so the clients
  connected are ``succeeded - (disconnected - failed)``; the events carry no
  connection id to match (a success's value is 0), only counts are sound;
- a ZAP handler (ZeroMQ RFC 27) bound at ``inproc://zeromq.zap.01`` in the
  socket's context is asked about every new connection during its handshake.
  With the NULL mechanism (no CURVE) libzmq asks it only when the socket has a
  ZAP domain set, so :meth:`Admission.guard` sets one. Status 200 admits the
  connection; 400 refuses it: libzmq sends the peer an ERROR command and closes
  the connection. libzmq takes that as a protocol error, after which a
  connecting socket does not reconnect: the refused client's messages are
  never delivered (nua's client reports that no connection was made within its
  timeout); a new connection (the next CLI run) is asked again.

Between an answer 200 and the monitor's "handshake succeeded", an admitted
connection is counted as pending, for at most the handshake interval (after
which libzmq has either completed or dropped it), so that a burst of new
connections cannot all pass before the first is counted.

Both sockets belong to the thread that serves the guarded socket (a socket
belongs to one thread): it polls :meth:`Admission.sockets` beside its own and
calls :meth:`Admission.handle`. The same handler is the place where client
credentials will be checked (CURVE).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

import structlog
import zmq
from zmq.utils.monitor import parse_monitor_message

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = "nua"
ZAP_VERSION = b"1.0"
# A ZAP request: version, request id, domain, address, identity, mechanism, credentials...
_ZAP_REQUEST_FRAMES = 6
_FAILED = frozenset(
    {
        int(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL),
        int(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL),
        int(zmq.EVENT_HANDSHAKE_FAILED_AUTH),
    }
)
_SUCCEEDED = int(zmq.EVENT_HANDSHAKE_SUCCEEDED)
_DISCONNECTED = int(zmq.EVENT_DISCONNECTED)
_MONITORED = _SUCCEEDED | _DISCONNECTED | sum(_FAILED)
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_clients = max_clients
        self.handshake_s = handshake_s
        self.log = log or structlog.stdlib.get_logger("nua.rpc.admission")
        self._clock = clock
        self._connected = 0
        self._pending: collections.deque[float] = collections.deque()
        self.refused = 0
        # Handshake failures whose disconnection is still to come.
        self._failed_pending = 0
        self._zap: zmq.Socket[Any] = context.socket(zmq.REP)
        self._zap.setsockopt(zmq.LINGER, 0)
        self._zap.bind(ZAP_ENDPOINT)
        self._monitor: zmq.Socket[Any] | None = None

    @property
    def clients(self) -> int:
        """Connections admitted and not gone (those still in their handshake included)."""
        self._expire_pending()
        return self._connected + len(self._pending)

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
        if self.clients >= self.max_clients:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                self.log.warning("client_refused", max_clients=self.max_clients, refused=self.refused)
            reply = [ZAP_VERSION, request_id, b"400", b"too many clients", b"", b""]
        else:
            self._pending.append(self._clock())
            reply = [ZAP_VERSION, request_id, b"200", b"OK", b"", b""]
        self._zap.send_multipart(reply)

    def _on_event(self, frames: list[bytes]) -> None:
        event = int(parse_monitor_message(frames)["event"])
        if event == _SUCCEEDED:
            self._connected += 1
            if self._pending:
                self._pending.popleft()
        elif event in _FAILED:
            self._failed_pending += 1  # its disconnection, next, is not a client's
        elif event == _DISCONNECTED:
            if self._failed_pending:
                self._failed_pending -= 1
            else:
                self._connected -= 1

    def _expire_pending(self) -> None:
        horizon = self._clock() - self.handshake_s
        while self._pending and self._pending[0] < horizon:
            self._pending.popleft()


__all__ = ["ZAP_DOMAIN", "ZAP_ENDPOINT", "Admission"]
