"""One client connection of the HTTP server: its socket (TLS or not), its h11 state machine, its output.

Everything here runs in the server's I/O thread, without blocking: reads take what
the socket has, writes go to an output buffer flushed as the socket accepts
(the selector watches for writability only while something is left). h11 parses
and frames; this class bounds what a client can make the server hold: the
request head (:data:`MAX_HEAD_BYTES`), the body (``[rpc] max_message_bytes``,
else 413) and the output (:data:`MAX_OUTPUT_BYTES`: an event stream whose
reader does not read is closed, and its browser resumes with ``Last-Event-ID``).
A connection handles one request at a time (h11 pauses pipelined ones).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus

import h11

from nua.http.request import Request, UnreadableRequestError, made

MAX_HEAD_BYTES = 16 * 1024
# Output one connection may have waiting (an event stream's backlog) before it is closed.
MAX_OUTPUT_BYTES = 4 * 1024 * 1024
RECV_BYTES = 64 * 1024
SERVER_HEADER = b"nua"


@dataclass(frozen=True, slots=True)
class Malformed:
    """Bytes that are not an HTTP/1.1 request (h11 refused them), or a request no route can read."""

    status: int
    message: str


class Connection:
    """A client's connection: feed it readable bytes, take complete requests, queue responses."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket, peer: str, max_body: int, now: float) -> None:
        self.sock = sock
        self.peer = peer
        self.max_body = max_body
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.output = bytearray()
        self.closed = False
        self.last_active = now
        self.handshaking = isinstance(sock, ssl.SSLSocket)
        self.busy = False  # a request is being answered (an RPC call waits, or an event stream runs)
        self.streaming = False  # an event stream: its response never ends
        self.overflow = False  # accepted past [http] max_clients: its request is answered 503, then it closes
        self.watching = 0  # the selector events the server watches it for (0: unregistered)
        self._head: h11.Request | None = None
        self._body = bytearray()
        self._too_large = False
        self._close_when_sent = False

    def fileno(self) -> int:
        return self.sock.fileno()

    # -- reading ------------------------------------------------------------------------------

    def read(self, now: float) -> list[Request | Malformed]:
        """Take what the socket has; return the requests (or refusals) that are now complete.

        The server watches a connection for reading only while it has no request in
        hand (or streams events), so what a client sends ahead waits in the socket,
        not here. An event stream's client has nothing to send: it is read only to
        see it close, and what it sends is dropped.
        """
        if self.handshaking and not self._handshake():
            return []
        chunks = self._recv_some()
        if chunks is None:
            return []
        self.last_active = now
        if self.streaming:
            self.closed = self.closed or not chunks[-1]
            return []
        for chunk in chunks:
            self.h11.receive_data(chunk)
        return self.next_requests()

    def _handshake(self) -> bool:
        assert isinstance(self.sock, ssl.SSLSocket)  # noqa: S101 - handshaking only under TLS
        try:
            self.sock.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except (ssl.SSLError, OSError):
            self.closed = True
            return False
        self.handshaking = False
        return True

    def _recv_some(self) -> list[bytes] | None:
        """One read's worth of what the socket has (``[b""]`` at its end); ``None`` when nothing yet.

        One ``recv`` of :data:`RECV_BYTES` (the selector says again if more waits), plus
        what TLS has already decrypted (no readiness would announce it): a client
        sending fast cannot make one round hold more than that.
        """
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self.sock.recv(RECV_BYTES)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except (ssl.SSLError, OSError):
                self.closed = True
                return None
            chunks.append(chunk)
            if not chunk or not _pending(self.sock):
                break
        return chunks or None

    def next_requests(self) -> list[Request | Malformed]:
        """The requests h11 has complete (at most one: the next waits until this one is answered)."""
        found: list[Request | Malformed] = []
        while not self.busy and not self.closed:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                found.append(Malformed(exc.error_status_hint, f"malformed HTTP request: {exc}"))
                self.busy = True
                break
            if event is h11.NEED_DATA or event is h11.PAUSED or not isinstance(event, h11.Event):
                break
            if isinstance(event, h11.ConnectionClosed):
                self.closed = True
                break
            complete = self._take(event)
            if complete is not None:
                found.append(complete)
                self.busy = True
        return found

    def _take(self, event: h11.Event) -> Request | Malformed | None:  # noqa: PLR0911 - one outcome per event
        """A request (or refusal) once ``event`` completes one, else ``None``."""
        if isinstance(event, h11.Request):
            head_bytes = len(event.target) + sum(len(name) + len(value) + 4 for name, value in event.headers)
            if head_bytes > MAX_HEAD_BYTES:  # h11 bounds an incomplete head only: one read may hold a whole larger one
                return Malformed(431, f"the request head is over {MAX_HEAD_BYTES} bytes")
            self._head, self._body, self._too_large = event, bytearray(), False
            length = _content_length(event.headers)
            if length is not None and length > self.max_body:
                return Malformed(413, f"the body is {length} bytes, over rpc.max_message_bytes ({self.max_body})")
            return None
        if isinstance(event, h11.Data):
            if not self._too_large:
                self._body += event.data
                if len(self._body) > self.max_body:
                    self._too_large = True
                    self._body = bytearray()
            return None
        if isinstance(event, h11.EndOfMessage) and self._head is not None:
            head, body, self._head, self._body = self._head, bytes(self._body), None, bytearray()
            if self._too_large:
                return Malformed(413, f"the body is over rpc.max_message_bytes ({self.max_body})")
            try:
                return made(head.method, head.target, list(head.headers), body)
            except UnreadableRequestError as exc:
                return Malformed(400, str(exc))
        return None

    # -- writing ------------------------------------------------------------------------------

    def respond(
        self, status: int, headers: Iterable[tuple[str, str]], body: bytes = b"", *, close: bool = False
    ) -> None:
        """Queue a whole response; the connection then reads its next request (or closes if it must, or ``close``)."""
        if self.closed or self.h11.our_state not in {h11.IDLE, h11.SEND_RESPONSE}:
            self.closed = True
            return
        all_headers = [*_common(headers), ("content-length", str(len(body)))]
        if close:
            all_headers.append(("connection", "close"))
        try:
            self._send(h11.Response(status_code=status, headers=all_headers, reason=_reason(status)))
            if body:
                self._send(h11.Data(data=body))
            self._send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self.closed = True
            return
        if _both_done(self.h11) and not close:
            self.h11.start_next_cycle()
            self.busy = False
        else:  # answered before the request was read whole (413), or the client asked to close
            self._close_when_sent = True

    def start_stream(self, headers: Iterable[tuple[str, str]]) -> None:
        """Queue a 200 whose body never ends (an event stream); :meth:`stream` adds to it."""
        self._send(h11.Response(status_code=200, headers=list(_common(headers)), reason=b"OK"))
        self.streaming = True

    def stream(self, data: bytes) -> None:
        """Add ``data`` to a streaming response; a reader that lets too much pile up is closed."""
        if self.closed:
            return
        self._send(h11.Data(data=data))
        if len(self.output) > MAX_OUTPUT_BYTES:
            self.closed = True

    def _send(self, event: h11.Event) -> None:
        data = self.h11.send(event)
        if data:
            self.output += data

    def flush(self) -> None:
        """Write what the socket takes now; close once a response that must end the connection is out."""
        while self.output and not self.closed:
            try:
                sent = self.sock.send(self.output[:RECV_BYTES])
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except (ssl.SSLError, OSError):
                self.closed = True
                return
            del self.output[:sent]
        if not self.output and (self._close_when_sent or self.h11.our_state is h11.MUST_CLOSE):
            self.closed = True

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


def _common(headers: Iterable[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    yield ("server", "nua")
    yield ("x-content-type-options", "nosniff")
    yield ("referrer-policy", "no-referrer")
    yield from headers


def _both_done(conn: h11.Connection) -> bool:
    """Whether the request and its response are both complete (the connection can take the next)."""
    return conn.our_state is h11.DONE and conn.their_state is h11.DONE


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)  # h11 has checked it is a number
    return None


def _pending(sock: socket.socket | ssl.SSLSocket) -> bool:
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


__all__ = ["MAX_OUTPUT_BYTES", "Connection", "Malformed"]
