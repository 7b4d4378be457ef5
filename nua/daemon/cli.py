"""``nua-orchestrator``: start, stop, restart and query the daemon; show its effective settings.

Exit codes follow the LSB init-script conventions: 0 success, 1 failure, 2 bad
usage, 6 not configured (the settings are wrong); ``status`` exits 0 running
(degraded included: it runs; the report says what is wrong), 1 dead with a pid
file left, 3 not running, 4 unknown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from nua.daemon import sigmask
from nua.status_tree import tree_lines
from nua.version import VERSION


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nua-orchestrator",
        description="Run and control the nua orchestrator daemon.",
        epilog=(
            "Settings come from the packaged params.toml, then the --config file (or $NUA_CONFIG),"
            " then NUA_<SECTION>_<KEY> environment variables."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.add_argument("--config", metavar="PATH", help="settings file (TOML) overriding the defaults")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    start = commands.add_parser("start", help="start the daemon; returns once it serves")
    start.add_argument(
        "--foreground", action="store_true", help="run in this process, logging to the console (systemd, containers)"
    )
    commands.add_parser("run", help="the same as start --foreground")
    commands.add_parser("stop", help="stop the daemon gracefully; returns once it is gone")
    commands.add_parser("restart", help="stop the daemon, then start a new one")
    commands.add_parser(
        "reload", help="re-open the log file and re-read the settings file (SIGHUP); exit 7 when none runs"
    )
    status = commands.add_parser("status", help="whether the daemon runs, and its actor tree (LSB exit codes)")
    status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    commands.add_parser(
        "config", help="check the settings and print them as TOML, each key commented with where it came from"
    )
    from nua.daemon import key_commands  # noqa: PLC0415 - its own module: the keys commands

    key_commands.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one exit per command
    # First of all, before the imports that take a while: a signal sent to a
    # daemon starting in this process waits until it can be handled.
    previous = sigmask.block()
    args = _parser().parse_args(argv)
    if not (args.command == "run" or (args.command == "start" and args.foreground)):
        # Not the daemon (a daemonising start blocks them again around its fork).
        sigmask.restore(previous)
    from nua.daemon import control  # noqa: PLC0415 - after the mask is set

    match args.command:
        case "start" if not args.foreground:
            return _leave(control.start(args.config))
        case "start" | "run":
            return control.start(args.config, foreground=True)
        case "stop":
            return control.stop(args.config)
        case "restart":
            return _leave(control.restart(args.config))
        case "reload":
            return control.reload(args.config)
        case "config":
            return show_config(args.config)
        case "keys":
            from nua.daemon import key_commands  # noqa: PLC0415

            return key_commands.run(args.config, args)
        case _:
            report = control.status(args.config)
            if args.json:
                print(json.dumps(report, indent=2, sort_keys=True))  # noqa: T201
            else:
                print(format_status(report))  # noqa: T201
            return int(report["code"])


def _leave(code: int) -> NoReturn:
    """Exit at once with ``code``, the output flushed: after a daemonising start (or restart).

    This process loaded the daemon's modules only to fork the daemon with them, and
    holds nothing to clean up (no thread, no file of its own). The interpreter's
    finalization would tear them all down and collect among them first, for nothing:
    about 60 ms of ``start`` here.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def show_config(config: str | None) -> int:
    """Print the effective settings with their origins (exit 0), or every problem with them (exit 6)."""
    from nua import settings  # noqa: PLC0415 - as control: after the mask is set
    from nua.daemon.exit_codes import EXIT_NOT_CONFIGURED  # noqa: PLC0415

    try:
        text = settings.effective_toml(config)
    except settings.SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"nua-orchestrator: {line}", file=sys.stderr)  # noqa: T201
        return EXIT_NOT_CONFIGURED
    sys.stdout.write(text)
    return 0


def format_status(report: dict[str, Any]) -> str:
    """The status report for humans: a summary, then the actor tree."""
    lines = [f"nua-orchestrator: {report['message']}"]
    # How the daemon was reached, when that is not simply through these settings.
    notes = (("record_warning", "warning:"), ("disagreement", "note:"))
    lines.extend(f"  {label:<13}{report[key]}" for key, label in notes if report.get(key))
    labels = (
        ("pid", "pid"),
        ("uptime_s", "uptime"),
        ("endpoint", "endpoint"),
        ("db_url", "database"),
        ("log_file", "log file"),
        ("methods", "rpc methods"),
    )
    if report.get("running"):
        for key, label in labels:
            value = report.get(key)
            if key == "uptime_s" and isinstance(value, int | float):
                value = f"{value:.0f} s"
            if value is not None:
                lines.append(f"  {label + ':':<13}{value}")
    lines.extend(
        f"  {'degraded:':<13}{item.get('component')}: {item.get('reason')} (since {item.get('since')})"
        for item in report.get("degraded") or ()
    )
    tree = report.get("tree")
    if isinstance(tree, dict):
        lines.append("  actors:")
        lines.extend(tree_lines(tree, depth=2))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
