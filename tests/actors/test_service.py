"""The service actor: states, restarts with backoff, stops that leave nothing, signals by identity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from servicekit import PYTHON, WAIT_S, Harness, config

from nua.actors import os_process
from nua.actors.service import NotRunningError, SignalService, StartService, StopService
from nua.service_settings import SERVICE_MARK

# A shell whose group holds two more sleeping processes.
FAMILY = "sleep 300 & sleep 300 & exec sleep 300"
# Ignores SIGTERM, as does the child it starts in its group; says so once it does.
STUBBORN = (
    "import signal, subprocess, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "subprocess.Popen(['sleep', '300'])\n"
    "print('ready', flush=True)\n"
    "time.sleep(300)\n"
)


def group_alive(pgid: int, since: float) -> list[psutil.Process]:
    return os_process.group_members(pgid, since)


def test_start_counts_after_start_s_and_stop_leaves_no_process_of_the_group(services: Harness) -> None:
    ref = services.start(config("family", FAMILY, shell=True, start_s=2))  # noqa: S604
    services.journal.wait_for("STARTING")
    status = services.status(ref)
    pid = status["pid"]
    identity = os_process.Identity.of(pid)
    assert identity is not None
    services.timers.advance(1.9)
    assert services.status(ref)["state"] == "STARTING"
    services.timers.advance(0.2)
    services.journal.wait_for("RUNNING")
    deadline = time.monotonic() + WAIT_S
    while len(group_alive(pid, identity.create_time)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)  # the shell forks its sleeps: no event tells when
    assert len(group_alive(pid, identity.create_time)) == 3
    assert os.getpgid(pid) == pid
    assert os.getsid(pid) == pid  # a session of its own
    stopped = ref.ask(StopService(), timeout=WAIT_S)
    assert stopped["state"] == "STOPPED"
    assert stopped["pid"] is None
    assert stopped["last_exit"]["signal"] == "SIGTERM"
    assert group_alive(pid, identity.create_time) == []
    assert not psutil.pid_exists(pid) or psutil.Process(pid).create_time() != identity.create_time


def test_a_child_ignoring_sigterm_is_killed_within_stop_timeout(services: Harness) -> None:
    ref = services.start(config("stubborn", [PYTHON, "-c", STUBBORN], start_s=0, stop_timeout_s=0.5))
    services.journal.wait_for("RUNNING")
    pid = services.status(ref)["pid"]
    identity = os_process.Identity.of(pid)
    assert identity is not None
    log = services.log_path("stubborn")
    deadline = time.monotonic() + WAIT_S
    while not (log.exists() and "ready" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)  # the program says when it ignores SIGTERM; its output has no event for a test
    assert len(group_alive(pid, identity.create_time)) == 2
    began = time.monotonic()
    stopped = ref.ask(StopService(), timeout=WAIT_S)
    took = time.monotonic() - began
    assert took < 0.5 + 0.5
    assert stopped["last_exit"]["signal"] == "SIGKILL"
    assert group_alive(pid, identity.create_time) == []


def test_an_immediately_crashing_service_backs_off_1_2_4_then_goes_fatal(services: Harness) -> None:
    ref = services.start(config("crash", ["false"], start_s=1, max_retries=3, backoff_s=1, backoff_max_s=3))
    for failures, delay in enumerate((1.0, 2.0, 3.0), start=1):
        services.journal.wait_for("BACKOFF", failures)
        assert services.timers.pending() == [delay]  # 1, 2, then 4 capped at backoff_max_s
        status = services.status(ref)
        assert status["failed_starts"] == failures
        assert status["last_exit"]["code"] == 1
        services.timers.advance(delay)
    services.journal.wait_for("FATAL")
    assert services.status(ref)["state"] == "FATAL"
    assert services.timers.pending() == []
    # A manual start resets the count.
    assert ref.ask(StartService(), timeout=WAIT_S)["failed_starts"] == 0
    services.journal.wait_for("BACKOFF", 4)
    assert services.status(ref)["failed_starts"] == 1


def test_a_running_service_that_crashes_is_replaced_at_once_and_the_actor_lives_on(services: Harness) -> None:
    ref = services.start(config("web", ["sleep", "300"], start_s=0))
    services.journal.wait_for("RUNNING")
    first = services.status(ref)["pid"]
    os.kill(first, signal.SIGKILL)
    services.journal.wait_for("RUNNING", 2)
    status = services.status(ref)
    assert status["pid"] not in (None, first)
    assert status["restarts"] == 1
    assert status["last_exit"]["signal"] == "SIGKILL"
    assert services.exits == []  # the actor did not crash: no restart intensity spent
    # Each change of state is an event, and so is the new process in the same state.
    published = [dict(e.facts) for e in services.events.read(0).events if e.kind == "service.state"]
    assert [(f["previous"], f["state"], f["pid"], f["restarts"]) for f in published] == [
        ("STOPPED", "RUNNING", first, 0),
        ("RUNNING", "RUNNING", status["pid"], 1),
    ]
    assert {f["service"] for f in published} == {"web"}


@pytest.mark.parametrize(
    ("restart", "exit_code", "final"),
    [("temporary", 3, "EXITED"), ("transient", 0, "EXITED"), ("transient", 3, "RUNNING")],
)
def test_restart_types(services: Harness, restart: str, exit_code: int, final: str) -> None:
    made = config("once", [PYTHON, "-c", f"import sys; sys.exit({exit_code})"], restart=restart, start_s=0)
    ref = services.start(made)
    services.journal.wait_for(final, 2 if final == "RUNNING" else 1)
    assert services.status(ref)["last_exit"]["code"] == exit_code


def test_the_environment_is_clean_plus_env_and_the_mark(services: Harness, tmp_path: Path) -> None:
    os.environ["NUA_SECRET_FOR_TEST"] = "leak"  # noqa: S105 - not a secret
    try:
        ref = services.start(
            config(
                "envy",
                [PYTHON, "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
                env={"GREETING": "hi"},
                restart="temporary",
                start_s=0,
                cwd=str(tmp_path),
            )
        )
        services.journal.wait_for("EXITED")
    finally:
        del os.environ["NUA_SECRET_FOR_TEST"]
    del ref
    services.loop.stop()
    env = json.loads(services.log_path("envy").read_text().splitlines()[-1])
    assert env["GREETING"] == "hi"
    assert env[SERVICE_MARK].startswith("envy@")
    assert "NUA_SECRET_FOR_TEST" not in env
    assert set(env) <= {"PATH", "HOME", "USER", "LOGNAME", "LANG", "GREETING", SERVICE_MARK, "PWD", "LC_CTYPE"}


def test_signal_reaches_the_group_and_a_stopped_service_refuses_it(services: Harness) -> None:
    ref = services.start(config("hup", ["sleep", "300"], start_s=0, restart="temporary"))
    services.journal.wait_for("RUNNING")
    ref.ask(SignalService(signal.SIGUSR1), timeout=WAIT_S)
    services.journal.wait_for("EXITED")
    assert services.status(ref)["last_exit"]["signal"] == "SIGUSR1"
    with pytest.raises(NotRunningError):
        ref.ask(SignalService(signal.SIGUSR1), timeout=WAIT_S)


def test_a_program_that_cannot_start_is_a_failed_start(services: Harness) -> None:
    ref = services.start(config("missing", ["/nonexistent/program"], max_retries=0))
    services.journal.wait_for("FATAL")
    assert "cannot start" in services.status(ref)["last_exit"]["error"]


def test_what_a_killed_daemon_left_running_is_stopped_before_the_service_starts(services: Harness) -> None:
    made = config("left", ["sleep", "300"], start_s=0)
    mark = "left@old-daemon"
    left = subprocess.Popen(
        ["sh", "-c", "sleep 300 & exec sleep 300"], start_new_session=True, env={**os.environ, SERVICE_MARK: mark}
    )
    try:
        identity = os_process.Identity.of(left.pid)
        assert identity is not None
        deadline = time.monotonic() + WAIT_S
        while len(group_alive(left.pid, identity.create_time)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # the shell forks its background sleep: no event tells when
        services.host.record_dir.mkdir(parents=True)
        record = {"pid": left.pid, "create_time": identity.create_time, "mark": mark}
        (services.host.record_dir / "left.json").write_text(json.dumps(record))
        ref = services.start(made)
        services.journal.wait_for("RUNNING")
        assert left.wait(WAIT_S) == -signal.SIGTERM
        assert group_alive(left.pid, identity.create_time) == []
        status = services.status(ref)
        assert status["pid"] != left.pid
        recorded = json.loads((services.host.record_dir / "left.json").read_text())
        assert recorded["pid"] == status["pid"]
    finally:
        if left.poll() is None:
            left.kill()
            left.wait()


def test_a_recycled_pid_in_the_record_is_left_alone(services: Harness) -> None:
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        services.host.record_dir.mkdir(parents=True)
        record = {"pid": bystander.pid, "create_time": 1.0, "mark": "x@y"}  # same pid, another process
        (services.host.record_dir / "other.json").write_text(json.dumps(record))
        services.start(config("other", ["sleep", "300"], start_s=0))
        services.journal.wait_for("RUNNING")
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_escaped_grandchildren_are_reported_and_killed_at_stop(services: Harness) -> None:
    # A double fork into a new session: outside the service's group, found by its mark.
    escape = f"{PYTHON} -c 'import os,time; os.fork() and os._exit(0); os.setsid(); time.sleep(300)'; exec sleep 300"
    ref = services.start(config("daemoniser", escape, shell=True, start_s=0))  # noqa: S604
    services.journal.wait_for("RUNNING")
    pid = services.status(ref)["pid"]
    mark = f"daemoniser@{services.host.instance}"
    strays = os_process.escaped(mark, pid)
    deadline = time.monotonic() + WAIT_S
    while not strays and time.monotonic() < deadline:  # the fork happens in the child, with no event to wait on
        time.sleep(0.02)
        strays = os_process.escaped(mark, pid)
    assert len(strays) == 1
    ref.ask(StopService(), timeout=WAIT_S)
    assert os_process.wait_gone(strays, WAIT_S) == []
