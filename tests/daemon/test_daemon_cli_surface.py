"""The whole argument surface of ``nua`` and ``nua-orchestrator``, against a real daemon.

Every command of ``nua`` is run (in this process, through :func:`nua.rpc.cli.main`,
the code ``bin/nua`` runs) with each of its value slots replaced in turn by a
hostile value: empty, huge, not UTF-8, NaN, infinity, negative, malformed JSON.
Whatever happens, there is no traceback, a failure is one line, and a value that
is wrong for its slot is a usage error (exit 2) found before anything is sent.
Also: help on every option and argument, ``--version`` and ``--config`` on both
commands, and a non-UTF-8 byte through the real ``bin/nua``.
"""

from __future__ import annotations

import argparse
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_helpers import DAEMON, NUA, DaemonEnv

from nua.daemon import cli as daemon_cli
from nua.rpc import cli
from nua.version import VERSION

# A sample good value for each argument, by its dest (choices take their first).
SAMPLES = {
    "username": "fuzz",
    "email": "fuzz@example.org",
    "id": "1",
    "ids": "1",
    "key": "site.fuzz",
    "value": "1",
    "name": "fuzz",
    "group": "fuzzers",
    "method": "user_count",
    "params": "[]",
    "declaration": '{"command": "true"}',
    "signal": "HUP",
    "public_key": "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
    "role": "reader",
    "lines": "5",
    "since": "1h",
    "who": "fuzz",
    "limit": "3",
    "display_name": "Fuzz",
    "source": "fuzz",
    "names": "fuzz",
    "mails": "fuzz@example.org",
    "timeout": "5",
}
NON_UTF8 = b"\xff".decode("utf-8", "surrogateescape")  # how Python hands a non-UTF-8 byte of argv over
HOSTILE = ["", "x" * 100_000, NON_UTF8, "nan", "inf", "-1", "{bad", "1e309", "-9" * 30]
# Refused by every slot, whatever it holds.
ALWAYS_REFUSED = {"x" * 100_000, NON_UTF8}
# Slots where empty text is a value (a display name cleared, an empty source).
EMPTY_ALLOWED = {("user update", "value"), ("group add", "source"), ("user add", "display_name")}
# Slots whose values have a form (numbers, JSON, endpoints): NaN, infinity and malformed JSON are refused.
TYPED = {"id", "ids", "lines", "limit", "timeout", "params", "declaration", "endpoint"}
# The common options are fuzzed once, on one command; the rest of their runs take these.
COMMON = {"endpoint", "config", "timeout", "server_key", "client_key"}


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command of ``parser``: its words and its parser."""
    subparsers = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not subparsers:
        yield path, parser
        return
    for word, sub in subparsers[0].choices.items():
        yield from leaves(sub, (*path, word))


def value_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if action.nargs != 0 and not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
    ]


def baseline(words: tuple[str, ...], parser: argparse.ArgumentParser, tmp: Path) -> list[str]:
    """A good command line for ``words``: every positional and every required option given."""
    argv = list(words)
    for action in value_actions(parser):
        if action.dest in COMMON:
            continue
        sample = SAMPLES.get(action.dest, "fuzz")
        if action.choices:
            sample = str(next(iter(action.choices)))
        if action.dest == "output":
            sample = str(tmp / "keygen" / "fuzz.key_secret")
        if not action.option_strings:
            argv.append(sample)
        elif action.required:
            argv += [action.option_strings[-1], sample]
    if any("--password-stdin" in action.option_strings for action in parser._actions):
        argv.append("--password-stdin")
    return argv


def slots(words: tuple[str, ...], parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in value_actions(parser):
        if action.choices or (action.dest in COMMON and words != ("status",)):
            continue
        yield action


def with_value(argv: list[str], action: argparse.Action, value: str) -> list[str]:
    if action.option_strings:
        return [*argv, f"{action.option_strings[-1]}={value}"]
    position = argv.index(SAMPLES.get(action.dest, "fuzz"), 1)
    return [*argv[:position], value, *argv[position + 1 :]]


def run(daemon: DaemonEnv, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([*argv, "--config", str(daemon.config)], stdin=io.StringIO("pw\n"), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_every_command_with_every_hostile_value_fails_in_one_line_without_a_traceback(
    daemon: DaemonEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # `keygen --output nan` writes a key pair where it is told: here
    daemon.write_config(security={"scrypt_n": 1024})
    daemon.start()
    commands = [(words, parser) for words, parser in leaves(cli._parser()) if words != ("completion",)]
    assert len(commands) > 35
    tried = 0
    for words, parser in commands:
        good = baseline(words, parser, tmp_path)
        for action in slots(words, parser):
            for value in HOSTILE:
                argv = with_value(good, action, value)
                code, _out, err = run(daemon, argv)
                tried += 1
                shown = f"{' '.join(words)} {action.dest}={value[:20]!r}: exit {code}, {err!r}"
                assert "Traceback" not in err, shown
                assert code in {0, 1, 2, 6}, shown
                if code:
                    assert err.count("\n") == 1, shown
                    assert len(err) < 600, shown
                empty_ok = (" ".join(words), action.dest) in EMPTY_ALLOWED
                if value in ALWAYS_REFUSED or (value == "" and not empty_ok):
                    assert code == 2, shown
                if action.dest in TYPED and value in {"nan", "inf", "{bad", "1e309"}:
                    assert code == 2, shown
    assert tried > 300


def test_a_non_utf8_argument_through_the_real_cli_is_one_usage_line(daemon: DaemonEnv) -> None:
    done = subprocess.run(
        [NUA.encode(), b"--config", str(daemon.config).encode(), b"setting", b"get", b"site.\xff"],
        capture_output=True,
        timeout=60,
        env=daemon.env(),
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count(b"\n") == 1
    assert b"not valid UTF-8" in done.stderr


@pytest.mark.parametrize("parser", [cli._parser(), daemon_cli._parser()], ids=["nua", "nua-orchestrator"])
def test_every_option_and_argument_has_help(parser: argparse.ArgumentParser) -> None:
    for words, leaf in leaves(parser):
        for action in leaf._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{' '.join(words)} {action.dest} has no help"


@pytest.mark.parametrize(("command", "name"), [([NUA], "nua"), ([*DAEMON], "nua-orchestrator")])
def test_version_and_help_say_exit_codes_and_variables(daemon: DaemonEnv, command: list[str], name: str) -> None:
    version = subprocess.run([*command, "--version"], capture_output=True, text=True, env=daemon.env(), check=False)
    assert (version.returncode, version.stdout) == (0, f"{name} {VERSION}\n")
    helped = subprocess.run([*command, "--help"], capture_output=True, text=True, env=daemon.env(), check=False)
    assert helped.returncode == 0
    assert "exit status" in helped.stdout
    assert "NUA_CONFIG" in helped.stdout
    assert "NUA_<SECTION>_<KEY>" in helped.stdout


def test_config_before_or_after_the_command_on_both_commands(daemon: DaemonEnv) -> None:
    pid = daemon.start()
    env = daemon.env()
    for command in ([*DAEMON], [NUA]):
        for argv in (["--config", str(daemon.config), "status"], ["status", "--config", str(daemon.config)]):
            done = subprocess.run([*command, *argv], capture_output=True, text=True, env=env, check=False)
            assert done.returncode == 0, done.stderr
            assert f"running (pid {pid})" in done.stdout


def test_usage_errors_of_nua_orchestrator_are_one_line(daemon: DaemonEnv) -> None:
    for args in (["status", "--bogus"], ["keys", "add", "bob", "--role", "root"], ["nosuch"], []):
        done = daemon.cli(*args)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert "--help` lists the arguments" in done.stderr
