"""Services under the real daemon: the README's ``[services.web]``, order, crash recovery, reaping, users."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from daemon_helpers import WAIT_S, DaemonEnv, is_alive, wait_until
from daemon_helpers import nua_cli as nua

from nua.rpc.client import Client
from nua.service_settings import SERVICE_MARK

USER = {"user": "root"} if os.geteuid() == 0 else {}


def services_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each service's figures, from the ``services`` node of ``status --json``'s tree."""
    node = next(child for child in status["tree"]["children"] if child["id"] == "services")
    return {child["id"]: child.get("detail") or {} for child in node["children"]}


def service(daemon: DaemonEnv, name: str) -> dict[str, Any]:
    code, status = daemon.status()
    assert code == 0
    return services_of(status)[name]


def marked(name: str) -> list[psutil.Process]:
    """Every live process bearing service ``name``'s mark, whichever daemon started it."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            mark = process.environ().get(SERVICE_MARK, "")
            if mark.startswith(f"{name}@") and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def kill_marked(*names: str) -> None:
    """Kill, by pid, what services ``names`` left running (a failed test's daemon was killed with SIGKILL)."""
    for name in names:
        for process in marked(name):
            with contextlib.suppress(psutil.Error):
                process.kill()


@pytest.fixture(autouse=True)
def no_service_left(daemon: DaemonEnv) -> Iterator[None]:
    """After the test, SIGKILL its daemons, then kill by pid what their services left.

    The daemons first: one still running restarts a service the moment its process
    is killed (a test's own clean-up, or this one), and the replacement would outlive it.
    """
    yield
    daemon.kill_all()
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            instance = process.environ().get(SERVICE_MARK, "@").split("@", 1)[1]
            if instance.split("-")[0] in {str(pid) for pid in daemon.pids}:
                process.kill()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def test_a_web_service_runs_answers_is_restarted_when_killed_and_stops_with_the_daemon(daemon: DaemonEnv) -> None:
    daemon.write_config(
        services={"web": {"command": [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"], **USER}}
    )
    daemon_pid = daemon.start()
    log = daemon.log_file.parent / "services" / "web.log"
    port = wait_until(
        lambda: re.search(r"port (\d+)", log.read_text()) if log.exists() else None, what="the server's port"
    ).group(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=WAIT_S) as reply:
        assert reply.status == 200
    first = wait_until(lambda: service(daemon, "web").get("state") == "RUNNING" and service(daemon, "web"))
    assert first["pid"] > 0
    assert first["rss_bytes"] > 0
    assert first["group_size"] == 1
    os.kill(first["pid"], signal.SIGKILL)
    again = wait_until(
        lambda: (s := service(daemon, "web"))["state"] == "RUNNING" and s["pid"] != first["pid"] and s,
        what="a new web process",
    )
    assert again["restarts"] == 1
    assert again["last_exit"]["signal"] == "SIGKILL"
    status = daemon.cli("status")
    assert re.search(r"web: RUNNING, pid \d+, up ", status.stdout), status.stdout
    assert daemon.cli("stop").returncode == 0
    daemon.wait_gone(daemon_pid)
    assert not is_alive(again["pid"])


def test_services_start_in_dependency_order_and_stop_in_reverse(daemon: DaemonEnv) -> None:
    sleeper = {"command": ["sleep", "300"], "start_s": 0, **USER}
    daemon.write_config(
        services={
            "app": {**sleeper, "depends_on": ["db", "cache"]},
            "db": sleeper,
            "cache": {**sleeper, "depends_on": ["db"]},
        }
    )
    daemon.start()
    assert daemon.cli("stop").returncode == 0
    events = [(e["event"], e.get("service")) for e in daemon.log_events() if e.get("service")]
    started = [name for event, name in events if event == "service_started"]
    stopped = [name for event, name in events if event == "service_stopped"]
    assert started == ["db", "cache", "app"]
    assert stopped == ["app", "cache", "db"]


def test_after_kill_9_of_the_daemon_each_service_runs_exactly_once(daemon: DaemonEnv) -> None:
    one, two = unique("one"), unique("two")
    family = {"command": "sleep 300 & exec sleep 300", "shell": True, "start_s": 0, **USER}
    daemon.write_config(services={one: family, two: family})
    first = daemon.start()
    wait_until(lambda: len(marked(one)) == 2 and len(marked(two)) == 2, what="both services up")
    left = {p.pid for p in marked(one) + marked(two)}
    os.kill(first, signal.SIGKILL)
    daemon.wait_gone(first)
    assert len(marked(one)) == 2  # still running, orphaned
    try:
        second = daemon.start()
        assert second != first
        wait_until(lambda: len(marked(one)) == 2 and len(marked(two)) == 2, what="both services up again")
        now = {p.pid for p in marked(one) + marked(two)}
        assert now.isdisjoint(left)
        daemon.wait_for_log("service_left_running", service=one)
    finally:
        daemon.kill_all()  # first: a running daemon would replace what kill_marked kills
        kill_marked(one, two)


def test_a_hundred_crashes_leave_no_zombie_and_no_descriptor_behind(daemon: DaemonEnv, tmp_path: Path) -> None:
    # Fails 100 times at once (each run counts itself in a file), then stays up.
    script = "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ $n -ge 100 ] && exec sleep 300; exit 1"
    daemon.write_config(
        services={"flap": {"command": script, "shell": True, "start_s": 0, "cwd": str(tmp_path), **USER}}
    )
    pid = daemon.start()
    settled = wait_until(
        lambda: (s := service(daemon, "flap"))["state"] == "RUNNING" and s["restarts"] >= 100 and s,
        what="100 restarts",
    )
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    os.kill(settled["pid"], signal.SIGKILL)
    wait_until(lambda: service(daemon, "flap")["restarts"] == settled["restarts"] + 1, what="one more restart")
    assert len(list(Path(f"/proc/{pid}/fd").iterdir())) == fds
    zombies = [c for c in psutil.Process(pid).children() if c.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []


def test_a_daemonised_grandchild_is_reaped_or_killed_by_the_daemon(daemon: DaemonEnv) -> None:
    # One grandchild exits at once after a double fork (an orphan: the daemon, its subreaper, reaps it);
    # the other stays in a session of its own (killed at stop).
    code = (
        "import os, time\n"
        "for stay in (0, 300):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(stay)\n"
        "        os._exit(0)\n"
        "time.sleep(300)\n"
    )
    name = unique("forker")
    daemon.write_config(services={name: {"command": [sys.executable, "-c", code], "start_s": 0, **USER}})
    pid = daemon.start()
    try:
        wait_until(lambda: len(marked(name)) == 2, what="the service and the grandchild that stays")
        daemon.wait_for_log("orphan_reaped")
        zombies = [c for c in psutil.Process(pid).children() if c.status() == psutil.STATUS_ZOMBIE]
        assert zombies == []
        assert daemon.cli("stop").returncode == 0
        daemon.wait_gone(pid)
        assert marked(name) == []
        assert daemon.wait_for_log("service_escaped_processes", service=name)
    finally:
        daemon.kill_all()
        kill_marked(name)


def test_sigusr2_reopens_the_service_logs(daemon: DaemonEnv) -> None:
    daemon.write_config(
        services={"ticker": {"command": "while :; do echo tick; sleep 0.05; done", "shell": True, **USER}}
    )
    pid = daemon.start()
    log = daemon.log_file.parent / "services" / "ticker.log"
    wait_until(lambda: log.exists() and "tick" in log.read_text(), what="a tick")
    moved = log.with_name("ticker.log.old")
    log.rename(moved)
    os.kill(pid, signal.SIGUSR2)
    wait_until(lambda: log.exists() and "tick" in log.read_text(), what="a tick in the reopened file")


@pytest.mark.skipif(os.geteuid() != 0, reason="running a service as another user needs the tests to run as root")
@pytest.mark.skipif(shutil.which("useradd") is None, reason="useradd is not installed")
def test_a_service_runs_as_its_user_with_the_users_groups(daemon: DaemonEnv) -> None:
    account = unique("nuat")
    subprocess.run(["useradd", "--create-home", "--groups", "users", account], check=True)
    try:
        entry = pwd.getpwnam(account)
        daemon.write_config(
            services={"as_user": {"command": "id -u; id -g; id -G; exec sleep 300", "shell": True, "user": account}}
        )
        daemon.start()
        log = daemon.log_file.parent / "services" / "as_user.log"
        lines = wait_until(lambda: log.exists() and len(log.read_text().split()) >= 3 and log.read_text().split())
        assert int(lines[0]) == entry.pw_uid
        assert int(lines[1]) == entry.pw_gid
        assert {int(g) for g in lines[2:]} == set(os.getgrouplist(account, entry.pw_gid))
        running = service(daemon, "as_user")
        assert psutil.Process(running["pid"]).uids().real == entry.pw_uid
        assert daemon.cli("stop").returncode == 0
    finally:
        daemon.kill_all()
        subprocess.run(["userdel", "-r", account], check=False, capture_output=True)


def test_a_service_added_by_rpc_survives_a_daemon_restart_and_the_cli_drives_it(daemon: DaemonEnv) -> None:
    sleeper = {"command": ["sleep", "300"], "start_s": 0, **USER}
    daemon.write_config(services={"filed": sleeper})
    first = daemon.start()
    declared = {**sleeper, "depends_on": ["filed"], "env": {"API_TOKEN": "s3cr3t-value"}}
    added = nua(daemon, "service", "add", "extra", json.dumps(declared), "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["source"] == "database"
    # An env value may be a secret: anyone who may read the service sees its names only.
    assert json.loads(added.stdout)["config"]["env"] == {"API_TOKEN": "***"}
    assert "s3cr3t-value" not in nua(daemon, "service", "status", "extra", "--json").stdout
    listed = nua(daemon, "service", "list")
    assert re.search(r"^filed\s+RUNNING\s+\d+.*file$", listed.stdout, re.MULTILINE), listed.stdout
    assert re.search(r"^extra\s+RUNNING\s+\d+.*database$", listed.stdout, re.MULTILINE), listed.stdout
    # The file's service is the file's; a bad declaration is one line; a dependency is kept.
    refused = nua(daemon, "service", "remove", "filed")
    assert (refused.returncode, refused.stderr.count("\n")) == (1, 1)
    assert "declared in the settings file" in refused.stderr
    bad = nua(daemon, "service", "add", "broken", '{"command": [], "restart": "sometimes"}')
    assert bad.returncode == 1
    assert "[services.broken] command" in bad.stderr
    assert "[services.broken] restart" in bad.stderr
    stopped = nua(daemon, "service", "stop", "extra", "--json")
    assert json.loads(stopped.stdout)["state"] == "STOPPED"
    started = nua(daemon, "service", "start", "extra", "--json")
    assert json.loads(started.stdout)["state"] == "RUNNING"
    assert daemon.cli("stop").returncode == 0
    daemon.wait_gone(first)
    daemon.start()
    again = json.loads(nua(daemon, "service", "status", "extra", "--json").stdout)
    assert again["state"] == "RUNNING"
    assert again["config"]["depends_on"] == ["filed"]
    assert nua(daemon, "service", "remove", "extra").returncode == 0
    assert "extra" not in nua(daemon, "service", "list").stdout
    assert daemon.cli("stop").returncode == 0
    daemon.start()
    assert "extra" not in nua(daemon, "service", "list").stdout


def test_logs_tail_and_follow_across_a_rotation(daemon: DaemonEnv) -> None:
    # 300 numbered lines of 9 or 10 bytes over 3 s: a 1 KiB log rotates every second.
    count = "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); sleep 0.01; done; exec sleep 300"
    daemon.write_config(
        services={
            "counter": {
                "command": count, "shell": True, "autostart": False, "log_max_bytes": 1024, "log_backups": 2, **USER
            }
        }
    )  # fmt: skip
    daemon.start()
    log = daemon.log_file.parent / "services" / "counter.log"
    with Client(daemon.endpoint, timeout=WAIT_S) as client:
        cursor = client.call("service_logs", "counter", 0)["cursor"]
        client.call("service_start", "counter")
        seen: list[str] = []
        while not seen or seen[-1] != "line 299":
            reply = client.call("service_logs", "counter", 0, cursor)
            seen += reply["lines"]
            cursor = reply["cursor"]
            if not reply["lines"]:
                wait_until(lambda at=cursor: log.stat().st_size != at["offset"] or log.stat().st_ino != at["inode"])
    assert seen == [f"line {i}" for i in range(300)]  # across every rotation: nothing lost, nothing twice
    assert log.with_name("counter.log.2").exists()
    tail = nua(daemon, "service", "logs", "counter", "-n", "3")
    assert tail.stdout.splitlines() == ["line 297", "line 298", "line 299"]
