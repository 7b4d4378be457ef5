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
from nua.status_tree import report_lines
from nua.version import VERSION

EPILOG = """exit status (LSB):
  start, stop, restart, config, keys: 0 done (start: also when it already runs;
      stop: also when it does not), 1 failed, 2 usage error, 6 not configured (a bad setting)
  reload: 0 asked, 7 not running
  status: 0 running (degraded included), 1 dead with its pid file left, 3 not running, 4 unknown

environment:
  NUA_CONFIG              the settings file, as --config
  NUA_<SECTION>_<KEY>     any setting, over the file's (NUA_ZMQ_PORT=5002, NUA_DB_URL=...,
                          NUA_SERVER_LOG_LEVEL=debug); `nua-orchestrator config` shows each source
Settings come from the packaged params.toml, then the --config file (or $NUA_CONFIG),
then the NUA_<SECTION>_<KEY> variables."""


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line, naming the command and where its help is (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (`{self.prog} --help` lists the arguments)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="nua-orchestrator",
        description="Run and control the nua orchestrator daemon.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    # Before or after the command (`nua-orchestrator status --config X`): SUPPRESS keeps the top level's value.
    config = _OneLineParser(add_help=False)
    config.add_argument(
        "--config", metavar="PATH", default=argparse.SUPPRESS, help="settings file (TOML) overriding the defaults"
    )
    parser.add_argument("--config", metavar="PATH", help="settings file (TOML) overriding the defaults")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = commands.add_parser(
            name, help=help_text, description=help_text, parents=[config]
        )
        return made

    start = command("start", "start the daemon; returns once it is ready to be called")
    start.add_argument(
        "--foreground", action="store_true", help="run in this process, logging to the console (systemd, containers)"
    )
    command("run", "the same as start --foreground")
    command("stop", "stop the daemon gracefully; returns once it is gone")
    command("restart", "stop the daemon, then start a new one")
    command("reload", "re-open the log file and re-read the settings file (SIGHUP); exit 7 when none runs")
    status = command("status", "whether the daemon runs, and its actor tree (LSB exit codes)")
    status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    command("config", "check the settings and print them as TOML, each key commented with where it came from")
    from nua.daemon import key_commands  # noqa: PLC0415 - its own module: the keys commands

    key_commands.add_parser(commands, parents=[config])
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
    """The status report for humans: a summary, then the actor tree (as ``nua status`` shows it)."""
    return "\n".join(report_lines(report, "nua-orchestrator"))


if __name__ == "__main__":
    sys.exit(main())
