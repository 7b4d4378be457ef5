"""``nua``: the command line client of the orchestrator daemon.

Every command is one JSON-RPC call (or a few) through :class:`nua.rpc.client.Client`.
Human tables by default, ``--json`` for scripts. Exit codes: 0 success, 1 the
daemon answered with an error, 2 a usage error, 3 the daemon is unreachable, 6
the settings are wrong; each failure prints one line saying what to do (one per
problem with the settings).

It starts fast: only ``json``, ``zmq``, the settings and the standard library are
imported on the way to a call (no tinyrpc, SQLAlchemy, structlog or pykka). The
endpoint is the running daemon's own, from its runtime record (:mod:`nua.runtime`),
found through the pid file the daemon's settings name; the settings' endpoint
when there is no record to trust. The settings are checked as the daemon's are,
but for the deep rules (database driver, scrypt), which this client needs not.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, TextIO

import zmq

from nua import client_settings, runtime
from nua.rpc import cli_args, cli_events, cli_logs
from nua.rpc.cli_args import ROLE_HELP, USER_ROLE_HELP, UsageError, strict_json
from nua.rpc.client import Client, DaemonUnreachableError, ProtocolError
from nua.rpc.errors import RpcError, error_code
from nua.status_tree import duration, report_lines, service_summary
from nua.version import VERSION

EXIT_OK = 0
EXIT_RPC_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_NOT_CONFIGURED = 6
EXIT_INTERRUPTED = 130


class NotConfiguredError(Exception):
    """The settings that say where the daemon is are wrong (exit 6, as the daemon's own)."""


# -- output -------------------------------------------------------------------------------

USER_COLUMNS = ("id", "username", "email", "role", "display_name", "created_at")
AUDIT_COLUMNS = ("id", "at", "who", "role", "method", "outcome", "detail", "params")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as aligned columns (every key of the rows when ``columns`` is not given)."""
    if not rows:
        return "(none)"
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(line[i]) for line in cells)) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    return "\n".join(lines)


def human(value: Any) -> str:
    """A result for a human: a table for rows, ``key: value`` lines for an object."""
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return table(value)
    if isinstance(value, list):
        return "\n".join(_cell(item) for item in value) if value else "(none)"
    if isinstance(value, dict):
        width = max((len(str(key)) for key in value), default=0)
        return "\n".join(f"{key!s:<{width}}  {_cell(item)}" for key, item in value.items())
    return _cell(value)


def show_status(status: dict[str, Any]) -> str:
    """``nua status``: the daemon's own account (``sys_status``), in ``nua-orchestrator status``'s words."""
    degraded = status.get("degraded") or []
    message = f"running (pid {status.get('pid')})"
    if degraded:
        reasons = "; ".join(f"{item.get('component')}: {item.get('reason')}" for item in degraded)
        message += f" but degraded: {reasons}"
    return "\n".join(report_lines({**status, "running": True, "message": message}, "nua"))


def show_describe(info: dict[str, Any]) -> str:
    lines = [str(info.get("signature", info.get("name")))]
    if info.get("role"):
        lines.append(f"role: {info['role']}")
    if info.get("doc"):
        lines += ["", str(info["doc"])]
    return "\n".join(lines)


def show_methods(methods: list[Any]) -> str:
    """``nua methods``: each method's signature and role, then the first line of its doc, indented."""
    lines = []
    for method in methods:
        if not isinstance(method, dict):  # a daemon from before signatures: names only
            lines.append(str(method))
            continue
        lines.append(f"{method.get('signature')}  [{method.get('role')}]")
        if method.get("summary"):
            lines.append(f"    {str(method['summary']).replace('``', '')}")
    return "\n".join(lines) or "(none)"


# -- reading secrets and values -----------------------------------------------------------


def read_password(args: argparse.Namespace, stdin: TextIO) -> str:
    """The password from stdin (``--password-stdin``) or a prompt: never from the command line."""
    if args.password_stdin:
        password = stdin.readline().rstrip("\r\n")
    else:
        if not stdin.isatty():
            msg = "no terminal to prompt for the password: pipe it with --password-stdin"
            raise UsageError(msg)
        import getpass  # noqa: PLC0415 - only commands that need a password pay for it

        try:
            password = getpass.getpass("Password: ")
            repeated = getpass.getpass("Repeat password: ")
        except EOFError:  # Ctrl-D at the prompt
            msg = "no password given (end of input): nothing was changed"
            raise UsageError(msg) from None
        if repeated != password:
            msg = "the passwords differ; try again"
            raise UsageError(msg)
    if not password:
        msg = "the password is empty"
        raise UsageError(msg)
    return password


def setting_value(args: argparse.Namespace) -> Any:
    """``setting set``'s VALUE: strict JSON, or the text itself with ``--string``."""
    if args.string:
        return args.value
    hint = f"""; a string is quoted ('"{args.value[:20]}"') or given with --string"""
    try:
        return strict_json(args.value, "VALUE")
    except UsageError as exc:
        raise UsageError(f"{exc}{hint}") from None


# -- commands ---------------------------------------------------------------------------------

Run = Callable[[Client, argparse.Namespace, TextIO], tuple[Any, Callable[[Any], str]]]
Params = Callable[[argparse.Namespace], list[Any]]


def _user_add(client: Client, args: argparse.Namespace, stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    data: dict[str, Any] = {"username": args.username, "email": args.email, "password": read_password(args, stdin)}
    if args.role is not None:
        data["role"] = args.role
    if args.display_name is not None:
        data["display_name"] = args.display_name
    if args.id is not None:
        data["id"] = args.id
    return client.call("user_add", data), lambda user: table([user], USER_COLUMNS)


def every_page(client: Client, method: str, most: int | None = None, /, **params: Any) -> list[Any]:
    """Every item of a paged list method (the first ``most``, when given), following ``next`` from page to page.

    A reply that is a plain list (a daemon from before paging) is taken whole.
    """
    items: list[Any] = []
    after: Any = None
    while True:
        page = client.call(method, **params) if after is None else client.call(method, **params, after=after)
        if isinstance(page, list):
            return (items + page)[:most]
        if not isinstance(page, dict) or not isinstance(page.get("items"), list):
            msg = f"{method} answered {type(page).__name__}, not a page of items"
            raise ProtocolError(msg)
        items += page["items"]
        following = page.get("next")
        if following is None or following == after or (most is not None and len(items) >= most):
            return items[:most]  # the last page wanted (or a server going round in circles)
        after = following


def _user_list(client: Client, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    request: dict[str, Any] = {}
    if args.ids:
        request["ids"] = args.ids
    if args.names:
        request["names"] = args.names
    if args.mails:
        request["mails"] = args.mails
    users = every_page(client, "user_list", request=request) if request else every_page(client, "user_list")
    return users, lambda rows: table(rows, USER_COLUMNS)


def _listed(method: str, *fields: str, show: Callable[[Any], str] = human) -> Run:
    """A command listing every item of a paged method; its params are the named arguments."""

    def run(client: Client, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
        return every_page(client, method, **{name: getattr(args, name) for name in fields}), show

    return run


_AGE = re.compile(r"^([0-9]{1,6})([smhdw])$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since_timestamp(text: str, now: datetime | None = None) -> str:
    """``--since``: an ISO 8601 timestamp (UTC when it has no offset) or an age (``30m``, ``1h``, ``2d``, ``1w``).

    Returned as an ISO 8601 timestamp in UTC, as ``audit_list`` takes it.
    """
    age = _AGE.match(text.strip())
    if age is not None:
        delta = timedelta(**{_AGE_UNITS[age.group(2)]: int(age.group(1))})
        return ((now or datetime.now(UTC)) - delta).isoformat()
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        msg = f"--since takes an ISO 8601 time (2026-01-31T12:00) or an age (30m, 1h, 2d, 1w), not {text!r}"
        raise UsageError(msg) from None
    return (stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)).isoformat()


def _audit(client: Client, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    most = args.limit
    filters = {"since": None if args.since is None else since_timestamp(args.since), "who": args.who}
    filters["method"] = args.method
    params = {name: value for name, value in filters.items() if value is not None}
    return every_page(client, "audit_list", most, **params), lambda rows: table(rows, AUDIT_COLUMNS)


def _user_update(client: Client, args: argparse.Namespace, stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    if args.key == "password":
        if args.value is not None:
            msg = "never put a password on the command line: omit VALUE to be prompted, or use --password-stdin"
            raise UsageError(msg)
        value: Any = read_password(args, stdin)
    elif args.value is None:
        msg = f"user update {args.key} needs a VALUE"
        raise UsageError(msg)
    elif args.key == "role":
        try:
            value = cli_args.user_role(args.value)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"VALUE of role {exc}") from None
    else:
        value = args.value
    return client.call("user_update", args.id, args.key, value), lambda user: table([user], USER_COLUMNS)


def _user_delete_all(client: Client, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    if not args.yes:
        msg = "user delete-all deletes every user: add --yes to confirm"
        raise UsageError(msg)
    return client.call("user_delete_all"), lambda n: f"{n} user(s) deleted"


def _call(client: Client, args: argparse.Namespace, stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    params: Any = []
    if args.params is not None:
        if args.params == "-":
            params = strict_json(stdin.read(), "the params on stdin", from_stdin=True)
        else:
            params = strict_json(args.params, "PARAMS_JSON")
        if not isinstance(params, list | dict):
            params = [params]
    result = client.call(args.method, **params) if isinstance(params, dict) else client.call(args.method, *params)
    return result, human


def _simple(method: str, *fields: str, params: Params | None = None, show: Callable[[Any], str] = human) -> Run:
    """A command that is one call; its params are the named arguments, or what ``params`` makes of them."""

    def run(client: Client, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
        values = params(args) if params is not None else [getattr(args, name) for name in fields]
        return client.call(method, *values), show

    return run


def _common_options() -> argparse.ArgumentParser:
    # On every subcommand too (``nua user list --json``); SUPPRESS keeps the top level's value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--endpoint",
        type=cli_args.endpoint,
        default=argparse.SUPPRESS,
        help="the daemon's endpoint, tcp://HOST:PORT or ipc:///path (default: the running daemon's, from its settings)",
    )
    common.add_argument(
        "--config",
        type=cli_args.name,
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="the daemon's settings file, to find it (default: $NUA_CONFIG, else the packaged defaults)",
    )
    common.add_argument(
        "--timeout",
        type=cli_args.timeout,
        metavar="SECONDS",
        default=argparse.SUPPRESS,
        help="how long to wait for each answer, above 0 (default 10)",
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON, for scripts")
    common.add_argument(
        "--server-key",
        type=cli_args.name,
        default=argparse.SUPPRESS,
        metavar="KEY_OR_FILE",
        help="the daemon's CURVE public key, or a file holding it (default: the local daemon's runtime record)",
    )
    common.add_argument(
        "--client-key",
        type=cli_args.name,
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="this client's CURVE key file (default: [zmq] client_key, ~/.config/nua/client.key_secret)",
    )
    return common


# The help line of each command word (also for the placeholders of commands not built).
_TOP_HELP = {
    "user": "manage users",
    "group": "manage groups",
    "setting": "manage application settings (stored in the daemon's database; not its configuration)",
    "service": "manage the processes the daemon supervises",
    "key": "manage the client keys allowed to call the daemon (admin)",
    "config": "the configuration the daemon runs with, each value with its source (admin; read-only)",
    "methods": "list the daemon's RPC methods with their signatures",
    "describe": "describe a method: signature, role needed, documentation",
    "call": "call any method with JSON params",
    "status": "the daemon's status and actor tree",
    "keygen": "make this account's client key pair and print its public key (for `nua-orchestrator keys add`)",
    "audit": "list the audit trail: changes made and calls denied, newest first",
    "events": cli_events.HELP,
    "logs": cli_logs.HELP,
    "completion": "print a shell completion script (bash or zsh)",
    "cron": "manage scheduled jobs and read their history",
}


class _Commands:
    """Builds the subcommands of one command group (``nua user ...``)."""

    def __init__(self, top: Any, name: str, common: argparse.ArgumentParser) -> None:
        self.common = common
        if name:
            self.subs = top.add_parser(name, help=_TOP_HELP[name], description=_TOP_HELP[name]).add_subparsers(
                dest="action", metavar="ACTION", required=True
            )
        else:
            self.subs = top

    def add(
        self, name: str, run: Run, help_text: str, *arguments: tuple[str, dict[str, Any]], local: bool = False
    ) -> None:
        """A subcommand running ``run``; ``local``: one that asks no daemon (``run`` gets no client)."""
        sub: argparse.ArgumentParser = self.subs.add_parser(
            name, help=help_text, description=help_text, parents=[self.common]
        )
        sub.set_defaults(run=run, local=local)
        for flag, options in arguments:
            sub.add_argument(flag, **options)


def _arg(flag: str, **options: Any) -> tuple[str, dict[str, Any]]:
    """An argument: text that is not empty unless a ``type`` says otherwise; ``help`` is required."""
    if "type" not in options and options.get("action") is None:
        options["type"] = cli_args.name
    return flag, options


PASSWORD_STDIN = _arg("--password-stdin", action="store_true", help="read the password from stdin (one line)")
IDS = _arg("ids", nargs="+", metavar="ID", type=cli_args.whole, help="user ids (integers)")
USER_ID = _arg("id", type=cli_args.whole, help="the user's id (an integer; see `nua user list`)")
GROUP = _arg("group", help="the group's name")


def _users(top: Any, common: argparse.ArgumentParser) -> None:
    users = _Commands(top, "user", common)
    users.add(
        "add", _user_add, "add a user (the password is prompted for)",
        _arg("username", help="the login name"), _arg("email", help="the e-mail address"),
        _arg("--role", type=cli_args.user_role, help=USER_ROLE_HELP),
        _arg("--display-name", type=cli_args.text, help="the name shown to people (default: none)"),
        _arg("--id", type=cli_args.whole, help="the id to give the user (default, or taken: the next free one)"),
        PASSWORD_STDIN,
    )  # fmt: skip
    users.add("get", _simple("user_get", "id", show=lambda user: table([user], USER_COLUMNS)), "show a user", USER_ID)
    users.add(
        "list", _user_list, "list users (all of them, or those matching any filter)",
        _arg("--ids", nargs="+", metavar="ID", type=cli_args.whole, help="users with these ids"),
        _arg("--names", nargs="+", metavar="NAME", help="users with these login names"),
        _arg("--mails", nargs="+", metavar="EMAIL", help="users with these e-mail addresses"),
    )  # fmt: skip
    users.add("count", _simple("user_count"), "count users")
    users.add(
        "update", _user_update, "set one field of a user (a password is prompted for)",
        USER_ID,
        _arg("key", choices=["username", "email", "role", "display_name", "password"], help="the field to set"),
        _arg("value", nargs="?", type=cli_args.text,
             help=f"its new value (omit for password: prompted); for role, {USER_ROLE_HELP.removeprefix('the user')}"),
        PASSWORD_STDIN,
    )  # fmt: skip
    deleted = _simple("user_delete", "ids", show=lambda n: f"{n} user(s) deleted")
    users.add("delete", deleted, "delete users by id", IDS)
    users.add(
        "delete-all", _user_delete_all, "delete every user",
        _arg("--yes", action="store_true", help="confirm: every user is deleted"),
    )  # fmt: skip


def _members_changed(verb: str) -> Run:
    def run(client: Client, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
        method = "group_add_members" if verb == "added to" else "group_remove_members"
        changed = client.call(method, args.group, args.ids)
        return changed, lambda n: f"{n} of {len(set(args.ids))} user(s) {verb} {args.group}"

    return run


def _groups(top: Any, common: argparse.ArgumentParser) -> None:
    groups = _Commands(top, "group", common)
    create = _simple("group_add", "name", "source")
    groups.add(
        "add", create, "create a group",
        _arg("name", help="the group's name"),
        _arg("--source", type=cli_args.text, default="", help="where the group comes from (free text, default empty)"),
    )  # fmt: skip
    groups.add("list", _listed("group_list"), "list groups with their member counts")
    removed = _simple("group_delete", "name", show=lambda _: "group deleted")
    groups.add("delete", removed, "delete a group (its members stay users)", _arg("name", help="the group's name"))
    members = _listed("group_members", "group", show=lambda rows: table(rows, USER_COLUMNS))
    groups.add("members", members, "list a group's members", GROUP)
    groups.add("add-members", _members_changed("added to"), "add users to a group", GROUP, IDS)
    groups.add("remove-members", _members_changed("removed from"), "remove users from a group", GROUP, IDS)


VALUE_HELP = """its value as JSON: '"my cloud"', 42, true, '{"a": 1}' (see --string)"""


def _settings(top: Any, common: argparse.ArgumentParser) -> None:
    settings = _Commands(top, "setting", common)
    key = _arg("key", help="the setting's key, e.g. site.name (not a configuration section: see `nua config`)")
    settings.add("get", _simple("setting_get", "key"), "show a setting", key)
    store = _simple("setting_set", params=lambda a: [a.key, setting_value(a)])
    settings.add(
        "set", store, "set a setting", key,
        _arg("value", type=cli_args.text, help=VALUE_HELP),
        _arg("--string", action="store_true", help="take VALUE as a plain string, not JSON"),
    )  # fmt: skip
    settings.add("list", _listed("setting_list"), "list settings")
    removed = _simple("setting_delete", "key", show=lambda n: f"{n} setting deleted")
    settings.add("delete", removed, "delete a setting (e.g. one whose stored value is damaged)", key)


SERVICE_COLUMNS = ("name", "state", "pid", "uptime", "restarts", "last_exit", "source")
# How often ``nua service logs -f`` asks for what is new.
FOLLOW_INTERVAL_S = 0.5


def show_services(services: list[dict[str, Any]]) -> str:
    """``nua service list``: one row per service, as ``supervisorctl status``."""
    rows = [
        {
            **service,
            "uptime": duration(service["uptime_s"]) if service.get("uptime_s") is not None else None,
            "last_exit": service_summary({"last_exit": service.get("last_exit")}).rpartition("last exit ")[2] or None,
        }
        for service in services
    ]
    return table(rows, SERVICE_COLUMNS)


def show_service(service: dict[str, Any]) -> str:
    """One service: its name, state and figures on one line, then its declaration."""
    lines = [f"{service.get('name')}: {service_summary(service)}"]
    if "source" in service:
        lines.append(f"source: {service['source']}")
    if isinstance(service.get("config"), dict):
        lines.append("config: " + json.dumps(service["config"], ensure_ascii=False))
    return "\n".join(lines)


def _service_logs(client: Client, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    reply = client.call("service_logs", args.name, args.lines)
    if not args.follow:
        return reply["lines"], "\n".join
    import time  # noqa: PLC0415 - only a follow waits

    while True:  # until Ctrl-C, as tail -f
        for line in reply["lines"]:
            sys.stdout.write((json.dumps(line, ensure_ascii=False) if args.json else line) + "\n")
        sys.stdout.flush()
        time.sleep(FOLLOW_INTERVAL_S)
        reply = client.call("service_logs", args.name, 0, reply["cursor"])


def _declaration(args: argparse.Namespace) -> list[Any]:
    return [args.name, strict_json(args.declaration, "CONFIG_JSON")]


def _services(top: Any, common: argparse.ArgumentParser) -> None:
    services = _Commands(top, "service", common)
    name = _arg("name", help="the service's name")
    declaration = _arg(
        "declaration",
        metavar="CONFIG_JSON",
        type=cli_args.text,
        help='the [services.NAME] keys as JSON: {"command": "..."}',
    )
    services.add("list", _simple("service_list", show=show_services), "list services (as supervisorctl status)")
    services.add("status", _simple("service_get", "name", show=show_service), "a service's state and figures", name)
    for action in ("start", "stop", "restart"):
        services.add(action, _simple(f"service_{action}", "name", show=show_service), f"{action} a service", name)
    add = _simple("service_add", params=_declaration, show=show_service)
    services.add("add", add, "add a service, kept in the database", name, declaration)
    update = _simple("service_update", params=_declaration, show=show_service)
    services.add("update", update, "replace a service's declaration", name, declaration)
    removed = _simple("service_remove", "name", show=lambda n: f"{n} service removed")
    services.add("remove", removed, "stop and forget a service added with add", name)
    signalled = _simple("service_signal", "name", "signal", show=show_service)
    services.add(
        "signal", signalled, "send a signal to a service's processes", name,
        _arg("signal", help="the signal's name or number: HUP, TERM, USR1, 15"),
    )  # fmt: skip
    reopened = _simple("service_reopen_logs", show=lambda n: f"{n} service log file(s) reopened")
    services.add("reopen-logs", reopened, "reopen the services' output files (after an external logrotate)")
    services.add(
        "logs", _service_logs, "a service's output", name,
        _arg("-n", dest="lines", type=cli_args.count, default=20, metavar="N", help="lines to show (default 20)"),
        _arg("-f", dest="follow", action="store_true", help="then print what follows, across rotations"),
    )  # fmt: skip


KEY_COLUMNS = ("name", "role", "public_key", "created_at", "last_seen_at")


def _keys(top: Any, common: argparse.ArgumentParser) -> None:
    keys = _Commands(top, "key", common)
    keys.add("list", _listed("key_list", show=lambda rows: table(rows, KEY_COLUMNS)), "list the client keys")
    keys.add(
        "add", _simple("key_add", "name", "public_key", "role", show=lambda key: table([key], KEY_COLUMNS)),
        "register a client key (its owner makes it with `nua keygen`)",
        _arg("name", help="the key's name, e.g. alice"),
        _arg("--public-key", required=True, metavar="KEY",
             help="its CURVE public key (write --public-key=KEY: a key may begin with '-')"),
        _arg("--role", required=True, type=cli_args.role, help=f"what it may call: {ROLE_HELP}"),
    )  # fmt: skip
    removed = _simple("key_remove", "name", show=lambda n: f"{n} key removed")
    keys.add("remove", removed, "remove a client key (its connections are refused from their next call)",
             _arg("name", help="the key's name"))  # fmt: skip
    rotated = _simple("key_rotate_server", show=human)
    keys.add("rotate-server", rotated, "make a new server key pair, used from the daemon's next start")


def _config_command(top: Any, common: argparse.ArgumentParser) -> None:
    def show(config: dict[str, Any]) -> str:
        from nua.settings import configuration_toml  # noqa: PLC0415 - only this command renders TOML

        source = config.get("config_file")
        first = "# the running daemon's configuration: the packaged defaults (params.toml), then "
        return configuration_toml(config["items"], first + (f"the file {source}," if source else "no file,"))

    _Commands(top, "", common).add("config", _simple("sys_config", show=show), _TOP_HELP["config"])


def _completion(_client: Client | None, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    """The completion script of ``args.shell`` for the whole command tree (shtab: a static script, no Python at TAB)."""
    import shtab  # noqa: PLC0415 - only this command needs it

    return shtab.complete(_parser(), shell=args.shell), str


# -- cron jobs ----------------------------------------------------------------------------------

CRON_COLUMNS = ("name", "schedule", "zone", "next_fire", "last_status", "source", "paused")
RUN_COLUMNS = ("id", "scheduled_at", "started_at", "status", "duration_s", "exit_code", "detail")
# How much of a run's detail a history table shows (the whole is in --json).
DETAIL_SHOWN = 60


def show_jobs(jobs: list[dict[str, Any]]) -> str:
    """``nua cron list``: one row per job, as ``systemctl list-timers``."""
    rows = [
        {
            **job,
            "schedule": job["config"].get("schedule"),
            "zone": job["config"].get("zone"),
            "next_fire": job.get("next_fire_at") or ("paused" if job.get("paused") else None),
        }
        for job in jobs
    ]
    return table(rows, CRON_COLUMNS)


def show_job(job: dict[str, Any]) -> str:
    """One job: its state, its next fires, then its declaration."""
    state = "paused" if job["paused"] else f"next {job['next_fire_at']}"
    last = job["last_status"] or "never ran"
    lines = [f"{job['name']}: {state}, last {last} ({job['source']}, runs as {job['owner']} [{job['owner_role']}])"]
    lines += [f"  {fire}" for fire in job.get("upcoming", [])]
    lines.append("config: " + json.dumps(job["config"], ensure_ascii=False))
    return "\n".join(lines)


def show_runs(runs: list[dict[str, Any]]) -> str:
    shown = []
    for run in runs:
        detail = " ".join(str(run.get("detail") or "").split())
        cut = detail if len(detail) <= DETAIL_SHOWN else detail[: DETAIL_SHOWN - 1] + "…"
        shown.append({**run, "scheduled_at": run["scheduled_at"] or "(run now)", "detail": cut})
    return table(shown, RUN_COLUMNS)


def _number(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        msg = f"{flag} takes a number of seconds, not {text!r}"
        raise UsageError(msg) from None


def job_table(args: argparse.Namespace) -> dict[str, Any]:
    """``nua cron add``'s options as a ``[jobs.NAME]`` table."""
    table_: dict[str, Any] = {"schedule": args.expression}
    if (args.call is None) == (args.command is None):
        msg = "give one action: --call METHOD [PARAMS_JSON], or --command 'PROGRAM ARGS...'"
        raise UsageError(msg)
    if args.call is not None:
        if len(args.call) > 2:
            msg = "--call takes a method and at most one PARAMS_JSON (an array or an object)"
            raise UsageError(msg)
        table_["call"] = args.call[0]
        if len(args.call) == 2:
            params = strict_json(args.call[1], "PARAMS_JSON")
            table_["params"] = params if isinstance(params, list | dict) else [params]
    else:
        table_["command"] = args.command
        for key in ("user", "cwd"):
            if getattr(args, key) is not None:
                table_[key] = getattr(args, key)
        if args.shell:
            table_["shell"] = True
    options = {
        "zone": args.zone,
        "timeout_s": _number(args.timeout_s, "--timeout-s"),
        "misfire_grace_s": _number(args.misfire_grace_s, "--misfire-grace-s"),
        "jitter_s": _number(args.jitter_s, "--jitter-s"),
        "max_running": None if args.max_running is None else int(_number(args.max_running, "--max-running") or 0),
    }
    table_.update({key: value for key, value in options.items() if value is not None})
    if args.no_coalesce:
        table_["coalesce"] = False
    if args.paused:
        table_["paused"] = True
    return table_


def _cron_add(client: Client, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    return client.call("cron_add", args.name, job_table(args)), show_job


def _cron_history(client: Client, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    return every_page(client, "cron_history", args.limit, name=args.name), show_runs


def cron_next(args: argparse.Namespace) -> list[dict[str, str]]:
    """``nua cron next``: the fires of an expression, computed as the cron actor computes them."""
    from nua.schedule import ScheduleError, parse, system_zone, zone  # noqa: PLC0415 - this command only

    zone_name = args.zone or system_zone()
    try:
        schedule = parse(args.expression, zone_name)
    except ScheduleError as exc:
        raise UsageError(str(exc)) from None
    if args.count < 1 or args.count > 1000:
        msg = f"-n takes a count from 1 to 1000, not {args.count}"
        raise UsageError(msg)
    after = datetime.now(UTC)
    if args.after is not None:
        try:
            given = datetime.fromisoformat(args.after)
        except ValueError:
            msg = f"--after takes an ISO 8601 time (2026-03-29T00:00, +01:00 or not), not {args.after!r}"
            raise UsageError(msg) from None
        after = given.replace(tzinfo=zone(zone_name)) if given.tzinfo is None else given
    local = zone(zone_name)
    return [
        {"local": fire.astimezone(local).isoformat(), "utc": fire.isoformat()}
        for fire in schedule.fires(after, args.count)
    ]


def _cron_next(_client: Client | None, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    return cron_next(args), lambda fires: "\n".join(f"{f['local']}  (UTC {f['utc']})" for f in fires)


def _cron(top: Any, common: argparse.ArgumentParser) -> None:
    cron = _Commands(top, "cron", common)
    name = _arg("name", metavar="NAME", help="the job's name, as `nua cron list` shows it")
    cron.add("list", _listed("cron_list", show=show_jobs), "list the jobs: schedule, zone, next fire, last status")
    cron.add("get", _simple("cron_get", "name", show=show_job), "a job, its next fires and its declaration", name)
    cron.add(
        "add", _cron_add, "add a job: nua cron add backup '30 2 * * *' --command '/usr/local/bin/backup'",
        name, _arg("expression", metavar="EXPR", help="5 cron fields, @daily..., or 'every 30s' / 'every 5m'"),
        _arg("--call", nargs="+", metavar="METHOD [PARAMS_JSON]", help="call this RPC method (with these params)"),
        _arg("--command", metavar="'PROGRAM ARGS...'", help="run this command (split as a shell would)"),
        _arg("--shell", action="store_true", help="run --command through /bin/sh -c"),
        _arg("--user", help="the account the command runs as"),
        _arg("--cwd", help="the command's working directory (absolute)"),
        _arg("--zone", help="IANA time zone of EXPR (default: the system's)"),
        _arg("--timeout-s", metavar="S", help="end the command after S seconds (default 3600)"),
        _arg("--misfire-grace-s", metavar="S", help="how late a missed fire may still run (with --no-coalesce)"),
        _arg("--no-coalesce", action="store_true", help="after downtime, run each missed fire within the grace"),
        _arg("--max-running", metavar="N", help="runs at once; a fire beyond is skipped (default 1)"),
        _arg("--jitter-s", metavar="S", help="start each fire up to S seconds late (fixed per fire)"),
        _arg("--paused", action="store_true", help="add it paused"),
    )  # fmt: skip
    declaration = _arg("declaration", metavar="CONFIG_JSON", help='the [jobs.NAME] keys as JSON: {"schedule": ...}')
    update = _simple("cron_update", params=lambda a: [a.name, strict_json(a.declaration, "CONFIG_JSON")], show=show_job)
    cron.add("update", update, "replace a job's declaration", name, declaration)
    for action, text in (("pause", "stop firing a job"), ("resume", "fire a paused job again, from now")):
        cron.add(action, _simple(f"cron_{action}", "name", show=show_job), text, name)
    ran = _simple("cron_run_now", "name", show=lambda r: f"run {r['run']} started (see nua cron history)")
    cron.add("run-now", ran, "run a job once now", name)
    removed = _simple("cron_remove", "name", show=lambda _: "job removed")
    cron.add("remove", removed, "forget a job added with add, and its history", name)
    cron.add(
        "history", _cron_history, "a job's runs, newest first", name,
        _arg("--limit", metavar="N", type=cli_args.count, help="the N most recent runs only"),
    )  # fmt: skip
    cron.add(
        "next", _cron_next, "preview fire times, as systemd-analyze calendar (no daemon needed)",
        _arg("expression", metavar="EXPR", help="5 cron fields, @daily..., or 'every 30s' / 'every 5m'"),
        _arg("--zone", help="IANA time zone (default: the system's)"),
        _arg("--after", metavar="ISO-8601-TIME", help="from this time (default: now; no offset: in --zone)"),
        _arg("-n", dest="count", type=int, default=5, help="how many (default 5)"),
        local=True,
    )  # fmt: skip


def _daemon(top: Any, common: argparse.ArgumentParser) -> None:
    daemon = _Commands(top, "", common)
    methods = _simple("rpc_methods", params=lambda _: [True], show=show_methods)
    daemon.add("methods", methods, _TOP_HELP["methods"])
    daemon.add(
        "describe", _simple("rpc_describe", "method", show=show_describe), _TOP_HELP["describe"],
        _arg("method", help="the method's name, as `nua methods` lists it"),
    )  # fmt: skip
    daemon.add(
        "call", _call, _TOP_HELP["call"],
        _arg("method", help="the method's name, as `nua methods` lists it"),
        _arg("params", nargs="?", metavar="PARAMS_JSON", type=cli_args.text,
             help="a JSON array for positional params ('[1, 2]'), an object for named ones"
                  """ ('{"user_data": {"username": "bob", ...}}': the names `nua describe METHOD` shows),"""
                  " or - to read them from stdin"),
    )  # fmt: skip
    daemon.add("status", _simple("sys_status", show=show_status), _TOP_HELP["status"])
    daemon.add(
        "keygen", keygen, _TOP_HELP["keygen"],
        _arg("--output", metavar="FILE", help="where to write the key pair (default: the --client-key file)"),
        local=True,
    )  # fmt: skip
    daemon.add(
        "completion", _completion, _TOP_HELP["completion"],
        _arg("shell", choices=["bash", "zsh"],
             help="the shell: `source <(nua completion bash)`, or write it where your shell loads completions"),
        local=True,
    )  # fmt: skip


def _audit_command(top: Any, common: argparse.ArgumentParser) -> None:
    _Commands(top, "", common).add(
        "audit", _audit, _TOP_HELP["audit"],
        _arg("--since", metavar="TIME_OR_AGE", help="from this ISO 8601 time, or this long ago (30m, 1h, 2d, 1w)"),
        _arg("--who", metavar="NAME", help="calls made with this key name only"),
        _arg("--method", metavar="NAME", help="calls of this method only"),
        _arg("--limit", metavar="N", type=cli_args.count, help="the N most recent records only"),
    )  # fmt: skip


_GROUPS: dict[str, Callable[[Any, argparse.ArgumentParser], None]] = {
    "user": _users,
    "group": _groups,
    "setting": _settings,
    "service": _services,
    "key": _keys,
    "config": _config_command,
    "methods": _daemon,
    "describe": _daemon,
    "call": _daemon,
    "status": _daemon,
    "keygen": _daemon,
    "completion": _daemon,
    "audit": _audit_command,
    "events": cli_events.add_parser,
    "logs": lambda top, common: cli_logs.add_parser(top, common, places=_places),
    "cron": _cron,
}
_VALUE_OPTIONS = frozenset({"--endpoint", "--config", "--timeout", "--server-key", "--client-key"})


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (skipping options and their values), if any."""
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in _VALUE_OPTIONS:
            skip = True
        elif not token.startswith("-"):
            return token
    return None


def _parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv``, only its command's subcommands are built (a quick start)."""
    # Two copies of the options: argparse shares an option's action between the parsers
    # built from one parent, and the top level's defaults must not become the
    # subcommands' (they would override `nua --timeout 2 user list`).
    parser = cli_args.OneLineParser(
        prog="nua",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Talk to the nua orchestrator daemon. `nua COMMAND --help` shows a command's arguments.",
        epilog=f"{cli_args.EXIT_CODES}.\n{cli_args.VARIABLES}.",
        parents=[_common_options()],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.set_defaults(endpoint=None, config=None, timeout=10.0, json=False, server_key=None, client_key=None)
    common = _common_options()
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = _command_of(argv) if argv is not None else None
    if wanted not in _GROUPS:
        wanted = None  # help, or a typo: build everything so that argparse can say what exists
    built: set[Callable[[Any, argparse.ArgumentParser], None]] = set()
    for name, add in _GROUPS.items():
        if wanted is None or _GROUPS[wanted] is add:
            if add not in built:
                add(top, common)
                built.add(add)
        elif name not in top.choices:
            top.add_parser(name, help=_TOP_HELP[name])
    return parser


# -- the endpoint and the keys ------------------------------------------------------------------


class Target(NamedTuple):
    """Where to call and how: the endpoint, the daemon's CURVE public key (``None``: no CURVE) and our key file."""

    endpoint: str
    server_key: str | None
    client_key_file: str
    settings_problem: str | None = None  # why the settings could not say where the client key is


def _places(args: argparse.Namespace) -> client_settings.Places:
    """The pid file, endpoint and client key file the settings name (the full loader when the quick one cannot)."""
    place = client_settings.places(args.config)
    if place is None:  # something the quick reader leaves to the full loader, which says what is wrong
        from nua import settings  # noqa: PLC0415

        try:
            loaded = settings.load(args.config, deep=False)
        except settings.SettingsError as exc:
            raise NotConfiguredError(str(exc)) from None
        place = client_settings.Places(loaded.server.pid_file, loaded.zmq.bind_endpoint, loaded.zmq.client_key)
    return place


def _server_key_arg(value: str) -> str:
    from nua import curve_keys  # noqa: PLC0415 - only for a key given on the command line

    try:
        return curve_keys.public_key(value)
    except curve_keys.KeyFileError as exc:
        msg = f"--server-key: {exc}"
        raise UsageError(msg) from None


def resolve_target(args: argparse.Namespace, stderr: TextIO | None = None) -> Target:
    """``--endpoint``, else the daemon's own: its runtime record, else its settings; and its key.

    The pid file named by the settings (``--config``/``NUA_CONFIG``, ``NUA_*``)
    says which daemon; its runtime record, where it really listens (it may have
    been started with another port, or its settings changed since) and its CURVE
    public key. Without a record to trust, the settings' endpoint, with a
    one-line warning on ``stderr`` when a record was there but could not be used.
    ``--server-key`` names the key (a remote daemon's); with ``--endpoint`` alone,
    the local record's key serves only when the record names that endpoint.
    """
    given_key = _server_key_arg(args.server_key) if args.server_key else None
    if args.endpoint:
        return _given_endpoint(args, str(args.endpoint), given_key)
    place = _places(args)
    client_key_file = str(args.client_key or place.client_key)
    found = runtime.locate(place.pid_file, place.endpoint)
    record = found.record
    if found.problem is not None:
        warning = f"nua: warning: {found.problem}; using the settings' endpoint {found.endpoint}"
        print(warning, file=stderr or sys.stderr)
    local_key = record.server_key if record is not None else None
    return Target(found.endpoint, given_key or local_key, client_key_file)


def _given_endpoint(args: argparse.Namespace, endpoint: str, given_key: str | None) -> Target:
    """``--endpoint``'s target: the settings are read only for what is not given, and only if they can be.

    Wrong settings do not stand in the way of a daemon named by hand; they are
    reported only when the client key they name is needed.
    """
    if given_key is not None and args.client_key:
        return Target(endpoint, given_key, str(args.client_key))  # nothing to read
    try:
        place = _places(args)
    except NotConfiguredError as exc:
        return Target(endpoint, given_key, str(args.client_key or ""), str(exc))
    record = runtime.locate(place.pid_file, place.endpoint).record
    local_key = record.server_key if record is not None and record.endpoint == endpoint else None
    return Target(endpoint, given_key or local_key, str(args.client_key or place.client_key))


def relocator(args: argparse.Namespace, current: Target, timeout: float) -> Callable[[], Client | None]:
    """What finds the daemon again (``nua events -f``): its place read as at the start; a client there if it moved.

    ``None`` while it is where it was (or its place cannot be read): the caller
    goes on asking the client it has. The client returned is the caller's to close.
    """
    last = (current.endpoint, current.server_key)

    def relocate() -> Client | None:
        nonlocal last
        try:
            found = resolve_target(args, io.StringIO())  # its warnings would repeat at each retry
            if (found.endpoint, found.server_key) == last:
                return None
            fresh = Client(found.endpoint, timeout, server_key=found.server_key, client_key=client_key(found))
        except (NotConfiguredError, UsageError, ValueError, OSError, zmq.ZMQError):
            return None
        last = (found.endpoint, found.server_key)
        return fresh

    return relocate


def client_key(target: Target) -> tuple[str, str] | None:
    """This account's key pair when the daemon wants CURVE (``NotConfiguredError`` saying what to do if absent)."""
    if target.server_key is None:
        return None
    if not target.client_key_file:
        raise NotConfiguredError(target.settings_problem or "no client key file: pass --client-key FILE")
    from nua import curve_keys  # noqa: PLC0415

    path = Path(target.client_key_file).expanduser()
    try:
        return curve_keys.read(path)
    except FileNotFoundError:
        msg = (
            f"no client key at {path}: the daemon at {target.endpoint} authenticates its clients."
            " Make one with `nua keygen`, then have an admin register its public key"
            " (`nua-orchestrator keys add NAME --role ROLE --public-key=KEY`)"
        )
        raise NotConfiguredError(msg) from None
    except curve_keys.KeyFileError as exc:
        raise NotConfiguredError(str(exc)) from None


def keygen(_client: Client | None, args: argparse.Namespace, _stdin: TextIO) -> tuple[Any, Callable[[Any], str]]:
    """Make a client key pair (0600, in a 0700 directory) and show its public key; talks to no daemon."""
    from nua import curve_keys, settings  # noqa: PLC0415

    path = Path(args.output or args.client_key or _places(args).client_key).expanduser()
    try:
        settings.private_dir(path.parent)
        pair = curve_keys.create(path)
    except FileExistsError:
        msg = f"{path} exists already: its public key is in it; remove it first to make a new pair, or pass --output"
        raise UsageError(msg) from None
    except settings.SettingsError as exc:
        raise NotConfiguredError(str(exc)) from None
    result = {"public_key": pair.public, "key_file": str(path)}
    return (
        result,
        lambda made: (
            f"{made['public_key']}\n(the key pair is in {made['key_file']}; give an admin the public key above:"
            f" nua-orchestrator keys add NAME --role ROLE --public-key={made['public_key']})"
        ),
    )


# -- main -----------------------------------------------------------------------------------------


def _fail(message: str, code: int, stderr: TextIO) -> int:
    for line in message.splitlines():
        print(f"nua: {line}", file=stderr)
    return code


def _rpc_error_line(exc: RpcError, method: str) -> str:
    """One line: the error, the facts of its ``data`` the message does not already say, and what to do."""
    line = f"{exc.kind} ({error_code(exc)}): {exc.message}"
    if isinstance(exc.data, dict):
        said = exc.message.lower()

        def already_said(value: Any) -> bool:
            if isinstance(value, list):  # a list of problems the message joins
                return all(already_said(item) for item in value)
            return isinstance(value, str | int) and str(value).lower() in said

        useful = {k: v for k, v in exc.data.items() if k != "traceback" and not already_said(v)}
        if useful:
            line += " [" + ", ".join(f"{k}={v}" for k, v in useful.items()) + "]"
    hints = {
        "busy": "; retry in a moment",
        "unavailable": "; retry in a moment",
        "timeout": "; the daemon is slow: retry, or raise --timeout",
        "method_not_found": "; `nua methods` lists them",
        "invalid_params": f"; `nua describe {method}` shows its params" if method else "",
        "internal_error": "; the daemon's log file says more (`nua-orchestrator status` names it)",
        "forbidden": "; ask an admin for a key with that role (nua-orchestrator keys add)",
    }
    return line + hints.get(exc.kind, "")


class _Recorded(Client):
    """A client that remembers the method it called last, for the hint of an error."""

    last_method = ""

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        self.last_method = method
        return super().call(method, *args, **kwargs)


def main(  # noqa: C901, PLR0911, PLR0912 - one exit per outcome
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one ``nua`` command; return its exit code."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    unreadable = cli_args.first_bad_argument(argv)
    if unreadable is not None:
        return _fail(unreadable, EXIT_USAGE, stderr)
    parser = _parser(argv)
    try:
        args = parser.parse_args(argv)
    except cli_args.ParseError as exc:
        return _fail(str(exc), EXIT_USAGE, stderr)
    except SystemExit as exc:  # --help, --version: printed
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    client: _Recorded | None = None
    try:
        if getattr(args, "local", False):  # a command that asks no daemon (set by _Commands.add, cli_logs)
            result, show = args.run(None, args, stdin)
        else:
            target = resolve_target(args, stderr)
            keys = client_key(target)
            with _Recorded(target.endpoint, args.timeout, server_key=target.server_key, client_key=keys) as client:
                if hasattr(args, "relocate"):  # a command that follows the daemon across its restarts
                    args.relocate = relocator(args, target, args.timeout)
                result, show = args.run(client, args, stdin)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE, stderr)
    except NotConfiguredError as exc:
        return _fail(str(exc), EXIT_NOT_CONFIGURED, stderr)
    except cli_logs.LogsError as exc:
        return _fail(str(exc), EXIT_RPC_ERROR, stderr)
    except RpcError as exc:
        return _fail(_rpc_error_line(exc, client.last_method if client else ""), EXIT_RPC_ERROR, stderr)
    except DaemonUnreachableError as exc:
        return _fail(str(exc), EXIT_UNREACHABLE, stderr)
    except ProtocolError as exc:
        return _fail(f"{exc}; is {args.endpoint or 'the endpoint'} a nua daemon?", EXIT_UNREACHABLE, stderr)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED, stderr)
    try:
        print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else show(result), file=stdout)
        stdout.flush()
    except BrokenPipeError:  # `nua ... | head`: the reader has what it wanted
        return EXIT_OK
    return EXIT_OK


def _exit() -> NoReturn:
    code = main()
    sys.stdout.flush()
    # Skip interpreter teardown (and ZeroMQ's context termination): the reply is in.
    os._exit(code)


if __name__ == "__main__":
    _exit()
