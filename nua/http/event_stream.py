"""``GET /events``: the daemon's event stream as Server-Sent Events, resumable with ``Last-Event-ID``.

Each event is one SSE message: ``id: BOOT:SEQ`` and ``data:`` the event's JSON
(``{"seq", "time", "kind", "facts"}``). A browser's ``EventSource`` reconnects by
itself and sends the last id back: the same daemon life (``BOOT``) resumes after
``SEQ``; another (the daemon restarted) starts from its first event held. Events
that fell out of the hub's bounded history meanwhile are announced by one
``event: missed`` message (``{"missed": N}``) before the rest.

The hub's listener only sets a flag and rings the I/O thread's wakeup (it runs in
the publisher's thread); the I/O thread then reads each stream's next events
from the hub (:meth:`pump`). A stream ends when the session or token that opened
it no longer admits it: expired, its key removed, the token replaced, the session
closed (the console then logs in again). Both are checked again before each
round of events is sent and whenever the token cache changes (its listener rings
the same wakeup), so a revoked stream is sent nothing more. Each stream carries a
comment every :data:`HEARTBEAT_S` so that proxies and browsers see it alive.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nua.actors.events import EventHub
from nua.http.connection import Connection
from nua.http.guard import Admitted, still_admitted
from nua.http.request import Request
from nua.http.sessions import Sessions
from nua.rpc.token_cache import TokenCache

HEARTBEAT_S = 15.0
# Events read for one stream per round (the rest follow in the next round).
PAGE = 500
# How long a browser waits before reconnecting (the SSE retry field, milliseconds).
RETRY_MS = 2000


@dataclass(slots=True)
class _Stream:
    since: int
    admitted: Admitted
    beat_at: float


def resume_point(last_event_id: str | None, boot: str) -> int:
    """The seq to resume after: ``SEQ`` of ``BOOT:SEQ`` when ``BOOT`` is this daemon life's, else 0."""
    if not last_event_id:
        return 0
    their_boot, _, seq = last_event_id.strip().rpartition(":")
    if their_boot != boot or not seq.isdigit() or len(seq) > 18:
        return 0
    return int(seq)


def message(boot: str, event: Mapping[str, Any]) -> bytes:
    """One SSE message for ``event`` (its JSON form)."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=True)
    return f"id: {boot}:{event['seq']}\ndata: {data}\n\n".encode("ascii")


class EventStreams:
    """The open event streams of one HTTP server incarnation (I/O thread only, but for the listener's flag)."""

    def __init__(
        self,
        hub: EventHub,
        wakeup: Callable[[], None],
        clock: Callable[[], float],
        tokens: TokenCache,
        sessions: Sessions,
    ) -> None:
        self._hub = hub
        self._wakeup = wakeup
        self._clock = clock
        self._tokens = tokens
        self._sessions = sessions
        self._streams: dict[Connection, _Stream] = {}
        self._pending = False
        self._unsubscribe: Callable[[], None] | None = hub.subscribe(self._published)
        # A token removed or replaced: the next tick checks every stream again (it does so each round).
        self._untoken: Callable[[], None] | None = tokens.subscribe(wakeup)

    def __len__(self) -> int:
        return len(self._streams)

    def _published(self, _event: Any) -> None:
        """In the publisher's thread: note it and wake the I/O thread, nothing more."""
        if not self._pending:
            self._pending = True
            self._wakeup()

    def open(self, conn: Connection, request: Request, admitted: Admitted) -> None:
        """Start ``conn``'s stream for whom ``admitted`` says, resuming after its ``Last-Event-ID``."""
        now = self._clock()
        since = resume_point(request.header("last-event-id"), self._hub.boot)
        conn.start_stream(
            [
                ("content-type", "text/event-stream; charset=utf-8"),
                ("cache-control", "no-store"),
                ("x-accel-buffering", "no"),  # nginx: pass each event on at once
            ]
        )
        conn.stream(f"retry: {RETRY_MS}\n\n".encode("ascii"))
        self._streams[conn] = _Stream(since, admitted, now + HEARTBEAT_S)
        self._send(conn, self._streams[conn])

    def forget(self, conn: Connection) -> None:
        self._streams.pop(conn, None)

    def pump(self) -> list[Connection]:
        """Send each stream what was published since its last event; the connections written to."""
        if not self._pending:
            return []
        self._pending = False
        written = []
        now = self._clock()
        for conn, stream in list(self._streams.items()):
            if not self._admits(stream, now):
                conn.closed = True  # revoked since the last round: sent nothing more
                written.append(conn)
            elif self._send(conn, stream):
                written.append(conn)
        return written

    def _admits(self, stream: _Stream, now: float) -> bool:
        return still_admitted(stream.admitted, self._tokens, self._sessions, now)

    def _send(self, conn: Connection, stream: _Stream) -> bool:
        page = self._hub.read(stream.since, limit=PAGE)
        out = bytearray()
        if page.missed:
            out += f"event: missed\ndata: {json.dumps({'missed': page.missed})}\n\n".encode("ascii")
        for event in page.events:
            out += message(page.boot, event.as_json())
            stream.since = event.seq
        if page.events and stream.since < page.last_seq:
            self._pending = True  # more than a page: the next round sends the rest
            self._wakeup()
        if out:
            conn.stream(bytes(out))
        return bool(out)

    def tick(self, now: float) -> tuple[list[Connection], float | None]:
        """End streams no longer admitted (expired, revoked), beat idle ones; the connections touched, next deadline."""
        touched = []
        nearest: float | None = None
        for conn, stream in list(self._streams.items()):
            if now >= stream.admitted.expires_at or not self._admits(stream, now):
                conn.closed = True  # the console sees the stream end, asks /session, and logs in again
                touched.append(conn)
                continue
            if now >= stream.beat_at:
                conn.stream(b": keep-alive\n\n")
                stream.beat_at = now + HEARTBEAT_S
                touched.append(conn)
            deadline = min(stream.admitted.expires_at, stream.beat_at)
            nearest = deadline if nearest is None else min(nearest, deadline)
        return touched, nearest

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._untoken is not None:
            self._untoken()
            self._untoken = None
        self._streams.clear()


__all__ = ["HEARTBEAT_S", "EventStreams", "message", "resume_point"]
