"""``events_``: the daemon's event stream, read page by page, waiting for the next event when asked.

Why a long-poll call rather than a ZeroMQ PUB socket: a read is an RPC call like
any other, so it goes through the same CURVE handshake, the same key store and the
same role check (``reader``), and a reader that fell behind or reconnected asks
for what it missed by ``seq`` instead of losing what a PUB socket dropped while
it was away (PUB has no replay and drops silently past its high-water mark).
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from typing import Any

from nua.actors.events import MAX_PAGE
from nua.rpc.errors import InvalidParamsError, UnavailableError
from nua.rpc.method_group import MethodGroup
from nua.rpc.registry import public

# The page a read returns when it does not say.
DEFAULT_LIMIT = 500
# Kinds one read may select, and the length of each.
MAX_KINDS = 32
MAX_KIND_CHARS = 64
# The longest wait, as a share of [rpc] call_timeout_s: the reply must leave before the call times out.
WAIT_SHARE = 0.5


class EventsMethods(MethodGroup):
    """Read what changed in the daemon."""

    prefix = "events_"

    @public(role="reader")
    def read(
        self,
        since: int = 0,
        kinds: list[str] | None = None,
        timeout_s: float = 0.0,
        limit: int = DEFAULT_LIMIT,
    ) -> dict[str, Any] | Future[dict[str, Any]]:
        """The events numbered after ``since``: ``{"boot", "events", "last_seq", "first_seq", "missed"}``.

        Each event: ``seq`` (1, 2, 3 ... within one life of the daemon, named by
        ``boot``), ``time`` (ISO 8601, UTC), ``kind`` (``actor.restarted``,
        ``service.state``, ``setting.changed``, ...) and ``facts``. ``kinds`` selects
        by kind or prefix (``service`` is every ``service.*``). When nothing is new,
        the call waits up to ``timeout_s`` seconds (at most half of ``[rpc]
        call_timeout_s``) for the next event, then answers with no events. Read the
        next page with ``since`` = the last ``seq`` received. ``missed`` > 0: that
        many events fell out of the bounded history (``[events] history``) before
        this read. A new ``boot``: the daemon restarted; read again from 0.
        """
        waits = self.services.event_waits
        if waits is None:
            raise UnavailableError("this gateway does not serve the event stream; retry", {"actor": "gateway"})
        return waits.read(
            _since(since),
            _kinds(kinds),
            _limit(limit),
            min(_timeout(timeout_s), self.services.settings.rpc.call_timeout_s * WAIT_SHARE),
        )


def _since(since: int) -> int:
    if since < 0:
        raise InvalidParamsError("since: must be 0 or a seq received before", {"param": "since"})
    return since


def _kinds(kinds: list[str] | None) -> tuple[str, ...] | None:
    if not kinds:
        return None
    if len(kinds) > MAX_KINDS:
        raise InvalidParamsError(f"kinds: at most {MAX_KINDS}", {"param": "kinds"})
    for kind in kinds:
        if not isinstance(kind, str) or not kind or len(kind) > MAX_KIND_CHARS or not kind.isprintable():
            msg = f"kinds: each a kind or prefix (service, actor.restarted) of 1 to {MAX_KIND_CHARS} characters"
            raise InvalidParamsError(msg, {"param": "kinds"})
    return tuple(kinds)


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidParamsError(f"limit: must be from 1 to {MAX_PAGE}", {"param": "limit"})
    return limit


def _timeout(timeout_s: float) -> float:
    if not math.isfinite(timeout_s) or timeout_s < 0:
        raise InvalidParamsError("timeout_s: must be a number of seconds, 0 or more", {"param": "timeout_s"})
    return timeout_s


__all__ = ["EventsMethods"]
