"""A JSON-RPC 2.0 client for nua's gateway, on a ZeroMQ DEALER socket.

Not REQ: a REQ socket that timed out is stuck (its next send fails) and waits
for a reply to a notification that never comes. A DEALER sends whenever it
likes and this client matches replies to calls by ``id``, dropping late replies
to calls that already timed out. The socket reconnects by itself when the
daemon restarts.

A call that a restarting gateway refused unread (``unavailable`` with
``dispatched: false``) is sent again within the timeout: it never ran.

Errors come back as the exceptions of :mod:`nua.rpc.errors` (``code``,
``message``, ``data``). A daemon that does not answer gives, within the
timeout, :class:`DaemonUnreachableError` saying how to start it.

With ``server_key`` (the daemon's CURVE public key) the connection is
encrypted and authenticated both ways: the client proves it holds the secret of
``client_key``, which the daemon must know (``nua-orchestrator keys add``), and
the daemon proves it holds the secret of ``server_key``. A daemon that does not
know the key refuses the connection during its handshake: no call is delivered,
and the client says so at once (:class:`ConnectionRefusedByDaemonError`, read from
the socket's handshake events) rather than at the end of its timeout.

:meth:`Client.subscribe` follows the daemon's event stream: an iterator over
``events_read`` pages, each call waiting in the daemon until something happens
(a long poll, :mod:`nua.rpc.methods.events`). It yields each event as a dict
(``seq``, ``time``, ``kind``, ``facts``, and the ``boot`` it belongs to), and two
kinds of notice, with ``seq`` ``None``, for what a reader must know to trust what
it saw: ``stream.missed`` (events after the last one seen fell out of the
daemon's bounded history; ``facts``: ``missed``, ``first_seq``; the stream goes
on from the oldest one held) and ``stream.boot`` (the daemon restarted; ``facts``:
``boot``, ``previous``; the stream goes on from the new daemon's first event).
While following, a daemon that is away (stopped, restarting, busy) is asked again
with a growing delay, up to :data:`MAX_RETRY_S`, until it answers: a follower
outlives a restart; given ``reconnect``, it asks it at each retry for a client
for where the daemon is now (the CLI reads the runtime record again), so that a
daemon restarted on another port or with a new server key is found again. Before
the first page, and for a refusal of this client's key that a new place does not
explain, the error is raised.

Imports only ``json`` and ``zmq``: the CLI starts fast. One client per thread
(a ZeroMQ socket belongs to one thread).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from types import TracebackType
from typing import Any, NamedTuple, Self

import zmq

from nua.rpc.errors import UNAVAILABLE, BusyError, RpcError, UnavailableError, from_reply

START_HINT = "start it with `nua-orchestrator start` (or check --endpoint / NUA_ZMQ_PORT / NUA_CONFIG)"
# How soon a dropped connection is retried (ZeroMQ's default is 100 ms).
RECONNECT_IVL_MS = 20
RECONNECT_IVL_MAX_MS = 1000
# How long a call waits for a connection before asking whether anything listens at all.
ABSENT_GRACE_S = 0.25
# Following events: events asked for per call; how long each call waits in the daemon for
# something new (at most half the client's timeout; the daemon may cap it lower); the delays
# between attempts while the daemon is away.
EVENTS_PAGE = 500
EVENTS_WAIT_S = 4.0
FIRST_RETRY_S = 0.1
MAX_RETRY_S = 2.0
# The notices a subscription yields beside the events (see the module's doc).
MISSED = "stream.missed"
NEW_BOOT = "stream.boot"
_PAGE_KEYS = frozenset({"boot", "events", "last_seq", "first_seq", "missed"})


class DaemonUnreachableError(ConnectionError):
    """No reply from the daemon within the timeout: it is not running, or not on this endpoint."""

    def __init__(self, endpoint: str, timeout: float, *, connected: bool, refused: bool = False) -> None:
        if connected:
            what = f"the daemon at {endpoint} did not answer within {timeout:g} s"
        elif refused:
            what = f"no daemon is running at {endpoint} (nothing listens there)"
        else:
            what = f"no daemon is running at {endpoint} (no connection within {timeout:g} s)"
        super().__init__(f"{what}; {START_HINT}")
        self.endpoint = endpoint
        self.timeout = timeout
        self.connected = connected


class ConnectionRefusedByDaemonError(DaemonUnreachableError):
    """Something answers at the endpoint but refused this client during the handshake, and why."""

    def __init__(self, endpoint: str, timeout: float, reason: str) -> None:
        ConnectionError.__init__(self, f"the daemon at {endpoint} refused the connection: {reason}")
        self.endpoint = endpoint
        self.timeout = timeout
        self.connected = False


# A CURVE key in Z85; anything else given as a key names a key file.
_Z85_KEY_CHARS = 40
# The handshake failures the client watches for (a ZAP refusal; a mechanism the server does not speak).
_REFUSALS = int(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
# The ZAP status (RFC 27) the daemon refuses with: an unknown key, or too many clients.
_DENIED = 400
_KEY_HINT = (
    "this client's key is not registered there (an admin adds it: nua-orchestrator keys add NAME --role ROLE"
    " --public-key=KEY; `nua keygen` makes one), or the server key given is not that daemon's"
)
_TOO_MANY = "it serves too many clients ([zmq] max_clients); retry once others have disconnected"


class ProtocolError(RuntimeError):
    """The reply was not valid JSON-RPC 2.0."""


class Call(NamedTuple):
    """One member of a batch: ``params`` is a list (positional) or a dict (named).

    (A NamedTuple, not a dataclass: ``dataclasses`` alone would add milliseconds to the CLI's start.)
    """

    method: str
    params: Sequence[Any] | dict[str, Any] = ()
    notify: bool = False


class Client:
    """Calls methods of the daemon at ``endpoint``, each within ``timeout`` seconds."""

    def __init__(
        self,
        endpoint: str,
        timeout: float = 10.0,
        *,
        context: zmq.Context[Any] | None = None,
        server_key: str | None = None,
        client_key: tuple[str, str] | str | os.PathLike[str] | None = None,
    ) -> None:
        """Connect to ``endpoint``; with ``server_key``, over CURVE with ``client_key``.

        ``server_key``: the daemon's public key (Z85), or a key file holding it;
        ``client_key``: this client's (public, secret) pair in Z85, or its key file
        (``nua keygen`` makes one). A key file is read with
        :func:`nua.curve_keys.read`: a secret key open to others is refused.
        """
        curve = _curve_keys(server_key, client_key)
        self.endpoint = endpoint
        self.timeout = timeout
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket[Any] = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            self._socket.curve_serverkey = curve[0].encode("ascii")
            self._socket.curve_publickey = curve[1][0].encode("ascii")
            self._socket.curve_secretkey = curve[1][1].encode("ascii")
        # Queue messages only on a live connection, so that a send to a daemon
        # that is not there times out instead of waiting forever.
        self._socket.setsockopt(zmq.IMMEDIATE, 1)
        self._socket.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        self._socket.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        # Before connecting: a refusal during the first handshake must be seen.
        self._monitor: zmq.Socket[Any] = self._socket.get_monitor_socket(_REFUSALS)
        self._curve = curve is not None
        self._socket.connect(endpoint)
        # Ids unique to this client and process: a late reply never matches a newer call.
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}-{id(self):x}-"

    # -- public API ---------------------------------------------------------------------

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` with positional or named arguments; return its result or raise its error.

        ``method`` is positional only: a call may have a param named ``method`` (``audit_list``'s).
        """
        if args and kwargs:
            msg = "JSON-RPC takes positional or named params, not both"
            raise TypeError(msg)
        request_id = self._next_id()
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if args or kwargs:
            request["params"] = list(args) if args else kwargs
        reply = self._roundtrip(_dumps(request), {request_id})
        return _result(reply)

    def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Send a notification: no reply, no error, no wait beyond handing it to the socket."""
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if args or kwargs:
            request["params"] = list(args) if args else kwargs
        self._send(_dumps(request), time.monotonic() + self.timeout)

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Send ``calls`` as one batch; return, for each non-notification, its result or its error instance.

        Errors are returned, not raised, so that one failed member does not hide
        the others' results. Results keep the order of ``calls``.
        """
        members: list[dict[str, Any]] = []
        ids: list[str] = []
        for one in calls:
            member: dict[str, Any] = {"jsonrpc": "2.0", "method": one.method, "params": _params(one.params)}
            if not one.notify:
                member["id"] = self._next_id()
                ids.append(member["id"])
            members.append(member)
        if not members:
            msg = "a batch needs at least one call"
            raise ValueError(msg)
        if not ids:
            self._send(_dumps(members), time.monotonic() + self.timeout)
            return []
        reply = self._roundtrip(_dumps(members), set(ids))
        if not isinstance(reply, list):
            # A whole-batch error (the server could not read it) applies to every call.
            error = _error_of(reply)
            return [error for _ in ids]
        by_id = {item.get("id"): item for item in reply if isinstance(item, dict)}
        results: list[Any] = []
        for request_id in ids:
            item = by_id.get(request_id)
            if item is None:
                results.append(ProtocolError(f"no reply for batch member {request_id}"))
            elif "error" in item:
                results.append(from_reply(item["error"]))
            else:
                results.append(item.get("result"))
        return results

    def subscribe(
        self,
        since: int = 0,
        kinds: Collection[str] | None = None,
        *,
        follow: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        reconnect: Callable[[], Client | None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The events after ``since`` (of ``kinds`` only, by kind or prefix), then, with ``follow``, each new one.

        Without ``follow`` it ends once it has read every event the daemon holds.
        While following, ``reconnect`` is asked, each time the daemon is away or
        refuses this client, for a client for the daemon's place now (``None``: the
        same place as before); the clients it gives are closed here.
        See the module's doc for the notices it yields besides events.
        """
        selected = sorted(kinds) if kinds else None
        wait_s = min(EVENTS_WAIT_S, self.timeout / 2) if follow else 0.0
        boot: str | None = None
        delay = FIRST_RETRY_S
        caller = self
        try:
            while True:
                try:
                    page = _page(
                        caller.call("events_read", since=since, kinds=selected, timeout_s=wait_s, limit=EVENTS_PAGE)
                    )
                except (DaemonUnreachableError, UnavailableError, BusyError) as exc:
                    if not follow or boot is None:
                        raise  # no daemon to follow yet: say so rather than wait for one
                    fresh = _recover(exc, reconnect, sleep, delay)
                    delay = min(delay * 2, MAX_RETRY_S)
                    caller = _switched(self, caller, fresh)
                    continue
                delay = FIRST_RETRY_S
                if boot is not None and page["boot"] != boot:
                    yield _notice(NEW_BOOT, page["boot"], boot=page["boot"], previous=boot)
                    boot, since = page["boot"], 0
                    continue
                boot = page["boot"]
                if page["missed"]:
                    yield _notice(MISSED, boot, missed=page["missed"], first_seq=page["first_seq"])
                for event in page["events"]:
                    yield {**event, "boot": boot}
                    since = event["seq"]
                if not page["events"]:
                    # Nothing (of these kinds) up to last_seq: the next read starts there.
                    since = max(since, page["last_seq"])
                    if not follow:
                        return
        finally:
            _switched(self, caller, self)  # back to this client: one that reconnect gave is closed

    def close(self) -> None:
        if self._socket.closed:
            return
        self._socket.disable_monitor()
        self._monitor.close(linger=0)
        self._socket.close(linger=0)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- wire -----------------------------------------------------------------------------

    def _next_id(self) -> str:
        return f"{self._prefix}{next(self._ids)}"

    def _writable(self, timeout_ms: int) -> bool:
        """Whether the socket can send within ``timeout_ms``; raises at once when the daemon refused us."""
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLOUT)
        poller.register(self._monitor, zmq.POLLIN)
        events = dict(poller.poll(timeout_ms))
        if self._monitor in events:
            self._refused()
        return self._socket in events

    def _refused(self) -> None:
        from zmq.utils.monitor import recv_monitor_message  # noqa: PLC0415 - only when refused

        event = recv_monitor_message(self._monitor)
        if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            reason = (
                "the security mechanisms differ: it authenticates clients with CURVE (pass --server-key, the"
                " daemon's public key from `nua-orchestrator keys list`)"
                if not self._curve
                else 'the security mechanisms differ: it does not use CURVE ([zmq] auth = "none"): omit --server-key'
            )
        elif event["value"] == _DENIED:
            reason = f"{_KEY_HINT}; or it serves too many clients" if self._curve else _TOO_MANY
        else:
            reason = f"authentication failed (ZAP status {event['value']}); see the daemon's log"
        raise ConnectionRefusedByDaemonError(self.endpoint, self.timeout, reason)

    def _send(self, payload: bytes, deadline: float) -> None:
        grace_ms = int(min(ABSENT_GRACE_S, max(0.0, deadline - time.monotonic())) * 1000)
        if not self._writable(grace_ms) and _nobody_listens(self.endpoint):
            # Nothing to wait for (the grace covers a gateway rebinding during its
            # restart): say so now rather than at the end of the timeout.
            raise DaemonUnreachableError(self.endpoint, self.timeout, connected=False, refused=True)
        while True:
            remaining = deadline - time.monotonic()
            if not self._writable(max(0, int(remaining * 1000))):
                raise DaemonUnreachableError(self.endpoint, self.timeout, connected=False)
            try:
                self._socket.send(payload, zmq.NOBLOCK)
            except zmq.Again:
                # The connection went away between the poll and the send (a
                # restarting gateway): wait for the reconnection, within the deadline.
                if remaining <= 0:
                    raise DaemonUnreachableError(self.endpoint, self.timeout, connected=False) from None
                continue
            return

    def _roundtrip(self, payload: bytes, ids: set[str]) -> Any:
        deadline = time.monotonic() + self.timeout
        self._send(payload, deadline)
        while (remaining := deadline - time.monotonic()) > 0:
            if not self._socket.poll(max(1, int(remaining * 1000)), zmq.POLLIN):
                break
            frames = self._socket.recv_multipart(zmq.NOBLOCK)
            try:
                reply = json.loads(frames[-1])
            except ValueError as exc:
                msg = f"the daemon sent a reply that is not JSON: {exc}"
                raise ProtocolError(msg) from None
            if not _matches(reply, ids):
                continue  # a late reply to a call that timed out before: dropped
            if _not_run(reply):
                # A restarting gateway refused it unread: sending it again is safe.
                self._send(payload, deadline)
                continue
            return reply
        raise DaemonUnreachableError(self.endpoint, self.timeout, connected=True)


def _curve_keys(
    server_key: str | None, client_key: tuple[str, str] | str | os.PathLike[str] | None
) -> tuple[str, tuple[str, str]] | None:
    """The server's public key and the client's pair in Z85, read from their files when given as files."""
    if server_key is None:
        return None
    if client_key is None:
        msg = "a CURVE connection (server_key) needs the client's key pair (client_key)"
        raise ValueError(msg)
    if len(server_key) == _Z85_KEY_CHARS and isinstance(client_key, tuple):
        return server_key, client_key
    from pathlib import Path  # noqa: PLC0415 - only for keys given as files

    from nua import curve_keys  # noqa: PLC0415

    pair = client_key if isinstance(client_key, tuple) else curve_keys.read(Path(client_key))
    return curve_keys.public_key(server_key), (pair[0], pair[1])


def _nobody_listens(endpoint: str) -> bool:
    """Whether ``endpoint`` certainly has no listener: no ipc socket file, or a refused TCP connection.

    Anything uncertain (a slow network, a name to resolve) is ``False``: the caller then waits as usual.
    """
    scheme, _, address = endpoint.partition("://")
    if scheme == "ipc":
        return not os.path.exists(address)  # noqa: PTH110 - pathlib would cost the CLI an import
    if scheme != "tcp":
        return False
    host, _, port = address.rpartition(":")
    import socket  # noqa: PLC0415 - only when the daemon did not answer at once

    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=0.2).close()
    except ConnectionRefusedError:
        return True
    except (OSError, ValueError):
        return False
    return False


def _notice(kind: str, in_boot: str, **facts: Any) -> dict[str, Any]:
    return {"seq": None, "time": None, "kind": kind, "facts": facts, "boot": in_boot}


def _recover(
    error: Exception, reconnect: Callable[[], Client | None] | None, sleep: Callable[[float], None], delay: float
) -> Client | None:
    """After a failed read while following: a client for the daemon's new place, or ``None`` to ask again.

    A refusal of this client's key is raised unless the daemon is somewhere else
    now (restarted on another port, or with a new server key): asking again would
    not make the key known. Otherwise wait ``delay`` first (the daemon is away).
    """
    if isinstance(error, ConnectionRefusedByDaemonError):
        fresh = reconnect() if reconnect is not None else None
        if fresh is None:
            raise error
        return fresh
    sleep(delay)
    return reconnect() if isinstance(error, DaemonUnreachableError) and reconnect is not None else None


def _switched(own: Client, current: Client, fresh: Client | None) -> Client:
    """``fresh`` (if any) in place of ``current``, which is then closed unless it is ``own`` (its owner closes that)."""
    if fresh is None or fresh is current:
        return current
    if current is not own:
        current.close()
    return fresh


def _page(page: Any) -> dict[str, Any]:
    """``page`` if it is a page of events as ``events_read`` answers, else ProtocolError."""
    if not isinstance(page, dict) or not page.keys() >= _PAGE_KEYS or not isinstance(page["events"], list):
        msg = f"events_read answered {type(page).__name__}, not a page of events"
        raise ProtocolError(msg)
    return page


def _params(params: Sequence[Any] | dict[str, Any]) -> list[Any] | dict[str, Any]:
    return params if isinstance(params, dict) else list(params)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _matches(reply: Any, ids: set[str]) -> bool:
    if isinstance(reply, dict):
        # An error about the message as a whole (parse error, too large) has id null.
        return reply.get("id") in ids or (reply.get("id") is None and "error" in reply)
    if isinstance(reply, list):
        return any(isinstance(item, dict) and item.get("id") in ids for item in reply)
    return False


def _not_run(reply: Any) -> bool:
    """Whether ``reply`` says the call was refused before it ran (``unavailable``, ``dispatched: false``)."""
    error = reply.get("error") if isinstance(reply, dict) else None
    if not isinstance(error, dict) or error.get("code") != UNAVAILABLE:
        return False
    data = error.get("data")
    return isinstance(data, dict) and data.get("dispatched") is False


def _error_of(reply: Any) -> RpcError | ProtocolError:
    if isinstance(reply, dict) and "error" in reply:
        return from_reply(reply["error"])
    return ProtocolError(f"not a JSON-RPC reply: {reply!r}"[:300])


def _result(reply: Any) -> Any:
    if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
        raise ProtocolError(f"not a JSON-RPC reply: {reply!r}"[:300])
    if "error" in reply:
        raise from_reply(reply["error"])
    return reply["result"]


__all__ = ["START_HINT", "Call", "Client", "ConnectionRefusedByDaemonError", "DaemonUnreachableError", "ProtocolError"]
