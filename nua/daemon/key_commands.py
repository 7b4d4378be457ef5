"""``nua-orchestrator keys``: register, list and remove client keys; rotate the server key.

``add``, ``list`` and ``remove`` are calls to the running daemon (``key_add``,
``key_list``, ``key_remove``), made with this account's client key: the DB
writer stays the only writer of the key store and the gateway's cache follows
each change at once. Only an admin key may make them; the daemon's own account
has one from the first start. ``rotate-server`` replaces the server key pair
file itself (it needs no daemon): the daemon serves with the new key from its
next start, and publishes it in its runtime record for local clients.

``token`` makes a key's HTTP bearer token here and sends the daemon only its id
and the SHA-256 of its secret (``key_token``); the token is printed once, for the
admin to hand over, and replaces the key's last one.

``add`` without ``--public-key`` makes the pair here and writes it 0600 to
``--output`` (default ``./NAME.key_secret``) for the admin to hand over; the
secret key is never sent to the daemon nor printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nua import curve_keys, runtime, settings
from nua.daemon import control
from nua.daemon.exit_codes import EXIT_FAILED, EXIT_NOT_CONFIGURED, EXIT_OK
from nua.roles import ROLES

# The daemon is asked within this.
TIMEOUT_S = 10.0
# As ``nua``'s: no daemon to ask.
EXIT_UNREACHABLE = 3
KEY_COLUMNS = ("name", "role", "public_key", "created_at", "last_seen_at")
# How long a token lives unless --ttl says otherwise: 90 days.
DEFAULT_TTL = "90d"
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parser(commands: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """The ``keys`` command and its actions, on ``nua-orchestrator``'s subparsers (each with ``parents``' options)."""
    keys = commands.add_parser("keys", help="client keys allowed to call the daemon, and the server key")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = actions.add_parser(name, help=help_text, parents=list(parents))
        return made

    add = action("add", "register a client key (made here when --public-key is not given)")
    add.add_argument("name", help="the key's name, e.g. alice (letters, digits, '_', '.', '@', '-')")
    add.add_argument(
        "--role", required=True, choices=list(ROLES), help=f"what the key may call: one of {', '.join(ROLES)}"
    )
    add.add_argument(
        "--public-key",
        metavar="KEY_OR_FILE",
        help="the client's public key (from `nua keygen`); write --public-key=KEY: a key may begin with '-'",
    )
    add.add_argument("--output", metavar="FILE", help="where a key pair made here goes (default ./NAME.key_secret)")
    listed = action("list", "the registered keys and the server's public key")
    listed.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    remove = action("remove", "remove a client key: its connections are refused from then on")
    remove.add_argument("name", help="the key's name, as `keys list` shows it")
    token = action("token", "issue the key's HTTP bearer token (replaces its last one); prints it")
    token.add_argument("name", help="the key's name, as `keys list` shows it")
    token.add_argument(
        "--ttl",
        type=ttl_seconds,
        default=DEFAULT_TTL,
        metavar="AGE",
        help="how long it is valid: 30s, 15m, 12h, 90d (default 90d)",
    )
    action("rotate-server", "replace the server key pair (applies at the daemon's next start)")


def run(config: str | None, args: argparse.Namespace) -> int:  # noqa: PLR0911 - one exit per outcome
    """Run one ``keys`` action; its exit code."""
    try:
        loaded = settings.load(config, deep=False)
    except settings.SettingsError as exc:
        return _fail(str(exc), EXIT_NOT_CONFIGURED)
    if args.action == "rotate-server":
        return _rotate(loaded)
    found = runtime.locate(loaded.server.pid_file, loaded.zmq.bind_endpoint)
    if found.record is None:
        reason = found.problem or "no runtime record"
        return _fail(f"the daemon is not running ({reason}); start it first", EXIT_UNREACHABLE)
    keys = control.keys_for(loaded, found)
    action = {"add": _add, "remove": _remove, "list": _list, "token": _token}[args.action]
    try:
        return action(found, keys, args)
    except control.QueryError as exc:
        return _fail(str(exc).splitlines()[0], EXIT_FAILED)
    except curve_keys.KeyFileError as exc:
        return _fail(str(exc), EXIT_NOT_CONFIGURED)
    except FileExistsError as exc:
        return _fail(f"{exc.filename} exists already; choose another --output", EXIT_FAILED)


def _add(found: runtime.Located, keys: control.Keys, args: argparse.Namespace) -> int:
    public, made = _public_key(args)
    try:
        row = control.query(found.endpoint, "key_add", args.name, public, args.role, timeout_s=TIMEOUT_S, keys=keys)
    except BaseException:
        if made is not None:  # the key was not registered: its pair goes
            with contextlib.suppress(OSError):
                made.unlink()
        raise
    _say(f"added {row['name']} ({row['role']}) {row['public_key']}")
    if made is not None:
        _say(f"its key pair is in {made} (0600): hand it to its holder, then remove it here")
    return EXIT_OK


def _remove(found: runtime.Located, keys: control.Keys, args: argparse.Namespace) -> int:
    control.query(found.endpoint, "key_remove", args.name, timeout_s=TIMEOUT_S, keys=keys)
    _say(f"removed {args.name}")
    return EXIT_OK


def _token(found: runtime.Located, keys: control.Keys, args: argparse.Namespace) -> int:
    ttl_s: float = args.ttl  # argparse applies ttl_seconds to the default too
    from nua import bearer_tokens  # noqa: PLC0415 - this command only (hashlib): not at every CLI start

    made = bearer_tokens.make()
    row = control.query(
        found.endpoint, "key_token", args.name, made.token_id, made.token_hash, ttl_s, timeout_s=TIMEOUT_S, keys=keys
    )
    _say(f"token for {row['name']} ({row['role']}), valid until {row['expires_at']}; it replaces any earlier one:")
    print(made.text, flush=True)  # noqa: T201 - alone on its line, for scripts
    return EXIT_OK


def ttl_seconds(text: str) -> float:
    """``--ttl``: an age (``30s``, ``15m``, ``12h``, ``90d``) in seconds; a usage error (exit 2) when it is not one."""
    unit = _UNITS_S.get(text[-1:])
    try:
        count = float(text[:-1]) if unit is not None else None
    except ValueError:
        count = None
    if count is None or unit is None or not 0 < count * unit < float("inf"):
        msg = f"takes a positive age such as 30s, 15m, 12h or 90d, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return count * unit


def _public_key(args: argparse.Namespace) -> tuple[str, Path | None]:
    """The public key to register, and the file of a pair made here for it (``None`` when given)."""
    if args.public_key:
        return curve_keys.public_key(args.public_key), None
    path = Path(args.output or f"{args.name}.key_secret").expanduser().absolute()
    return curve_keys.create(path).public, path


def _list(found: runtime.Located, keys: control.Keys, args: argparse.Namespace) -> int:
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = control.query(found.endpoint, "key_list", None, after, timeout_s=TIMEOUT_S, keys=keys)
        items += page["items"]
        after = page["next"]
        if after is None:
            break
    server_key = found.record.server_key if found.record is not None else None
    if args.json:
        print(json.dumps({"server_key": server_key, "keys": items}, indent=2))  # noqa: T201
        return EXIT_OK
    from nua.rpc.cli import table  # noqa: PLC0415 - the one table renderer

    print(f"server key: {server_key or '(none: [zmq] auth = none)'}")  # noqa: T201
    print(table(items, KEY_COLUMNS))  # noqa: T201
    return EXIT_OK


def _rotate(loaded: settings.Settings) -> int:
    try:
        from nua.rpc import credentials  # noqa: PLC0415 - only this action writes keys

        pair = credentials.rotate_server(loaded)
    except (settings.SettingsError, OSError) as exc:
        return _fail(f"cannot write the server key: {exc}", EXIT_NOT_CONFIGURED)
    _say(f"new server key {pair.public}; it applies at the daemon's next start (nua-orchestrator restart)")
    _say("remote clients then need it: --server-key with the new public key")
    return EXIT_OK


def _say(message: str) -> None:
    print(f"nua-orchestrator: {message}", flush=True)  # noqa: T201


def _fail(message: str, code: int) -> int:
    print(f"nua-orchestrator: {message}", file=sys.stderr, flush=True)  # noqa: T201
    return code


__all__ = ["add_parser", "run"]
