"""``nua events``: the daemon's event stream, once or followed (``-f``), as lines or JSON lines.

One line per event: its ``seq``, time (UTC), kind and facts (``key=value``).
Besides events, a follower is told in a line of its own when events were missed
(they fell out of the daemon's bounded history, ``[events] history``) and when
the daemon restarted (it then goes on from the new daemon's first event): see
:meth:`nua.rpc.client.Client.subscribe`. A follower that loses its daemon reads
its place again as the CLI does at its start (the runtime record first), so a
daemon restarted on another port (``[zmq] port = 0``) or with a new server key is
found again.

Facts are the daemon's, and some come from outside it (a job's output, a name):
a string that is not plain printable text is shown as JSON (``"\u001b[31m"``),
never raw, so that no escape sequence or line break reaches the terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from nua.rpc.client import MISSED, NEW_BOOT, Client

HELP = "show the daemon's events (changes of state), -f to follow them"
# A kind or prefix given with --kind (as events_read takes it).
MAX_KIND_CHARS = 64


def _seq(text: str) -> int:
    if not text.isdigit():
        msg = f"takes a seq: a whole number, 0 or more, not {text[:40]!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def _kind(text: str) -> str:
    if not text or len(text) > MAX_KIND_CHARS or not text.isprintable() or text.strip() != text:
        msg = f"takes a kind or a prefix of kinds (service, actor.restarted) of 1 to {MAX_KIND_CHARS} characters"
        raise argparse.ArgumentTypeError(msg)
    return text


def add_parser(top: Any, common: argparse.ArgumentParser) -> None:
    """Add ``events`` to the subcommands ``top`` (``common``: the options every command takes)."""
    events: argparse.ArgumentParser = top.add_parser("events", help=HELP, parents=[common], description=HELP)
    events.set_defaults(run=run, relocate=None)
    events.add_argument(
        "-f", "--follow", action="store_true", help="then wait for new events and print each (Ctrl-C ends)"
    )
    events.add_argument(
        "--since", type=_seq, default=0, metavar="SEQ", help="only the events after this seq (default 0: all held)"
    )
    events.add_argument(
        "--kind",
        dest="kinds",
        action="append",
        type=_kind,
        metavar="KIND",
        help="only events of this kind or prefix (service, actor.restarted); repeat for more",
    )


def line(event: dict[str, Any]) -> str:
    """One event (or notice) as a line for humans."""
    facts = event.get("facts") or {}
    if event.get("kind") == MISSED:
        text = f"{facts.get('missed')} event(s) missed: the daemon's history starts at seq {facts.get('first_seq')}"
        return f"-- {text} --"
    if event.get("kind") == NEW_BOOT:
        return f"-- the daemon restarted (boot {facts.get('boot')}): its events follow from the first --"
    shown = " ".join(f"{_text(str(key))}={_value(value)}" for key, value in facts.items())
    return f"{event.get('seq'):>6}  {_text(str(event.get('time')))}  {_text(str(event.get('kind')))}  {shown}".rstrip()


def _plain(text: str) -> bool:
    """Printable and without whitespace: safe to print bare."""
    return bool(text) and text.isprintable() and not any(char.isspace() for char in text)


def _text(text: str) -> str:
    return text if _plain(text) else json.dumps(text)


def _value(value: Any) -> str:
    if isinstance(value, str) and _plain(value):
        return value
    return safe_json(value)


def safe_json(value: Any) -> str:
    """``value`` as JSON, non-ASCII kept when printable; else all escaped (C1 controls, bidi overrides)."""
    text = json.dumps(value, ensure_ascii=False)
    return text if text.isprintable() else json.dumps(value)


def _lines(events: Iterable[dict[str, Any]]) -> str:
    return "\n".join(line(event) for event in events) or "(none)"


def run(client: Client, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    """Print the events held (and, with ``-f``, each new one as it comes, until Ctrl-C)."""
    if not args.follow:
        return list(client.subscribe(args.since, args.kinds, follow=False)), _lines
    # main() sets relocate: a client for where the daemon is now, if it moved (the runtime record read again).
    stream = client.subscribe(args.since, args.kinds, reconnect=args.relocate)
    for event in stream:  # until Ctrl-C, as tail -f
        sys.stdout.write((safe_json(event) if args.json else line(event)) + "\n")
        sys.stdout.flush()
    return None, str  # a follow ends only when interrupted


__all__ = ["add_parser", "line", "run", "safe_json"]
