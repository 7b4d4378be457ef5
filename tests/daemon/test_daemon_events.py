"""The event stream on a real daemon, read with the real ``nua events``: follow, kinds, gaps, restarts, changes."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import threading
from typing import Any

import pytest
from daemon_helpers import NUA, WAIT_S, DaemonEnv

from nua import runtime
from nua.rpc.client import Client
from nua.rpc.errors import InvalidParamsError


class Follower:
    """``nua events -f --json`` in a process of its own; its lines are read as they come."""

    def __init__(self, daemon: DaemonEnv, *args: str) -> None:
        self.process = subprocess.Popen(
            [NUA, "--config", str(daemon.config), "events", "-f", "--json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=daemon.env(),
        )
        daemon.popens.append(self.process)  # ended by the fixture, by its pid, if still running
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            self.lines.put(text)
        self.lines.put(None)

    def wait_for(self, what: str, match: Any) -> dict[str, Any]:
        """The first event (seen from now on) for which ``match`` is true."""
        while True:
            try:
                text = self.lines.get(timeout=WAIT_S)
            except queue.Empty:
                pytest.fail(f"nua events -f showed no {what} within {WAIT_S} s; it showed {self.seen}")
            if text is None:
                assert self.process.stderr is not None
                pytest.fail(f"nua events -f ended: {self.process.stderr.read()}")
            event = json.loads(text)
            self.seen.append(event)
            if match(event):
                return event


def fault_injection(daemon: DaemonEnv) -> None:
    daemon.write_config(debug={"allow_fault_injection": True})


def events(daemon: DaemonEnv, *args: str) -> list[dict[str, Any]]:
    shown = daemon.nua("events", "--json", *args)
    assert shown.returncode == 0, shown.stderr
    listed: list[dict[str, Any]] = json.loads(shown.stdout)
    return listed


def test_events_f_shows_a_restart_made_from_another_process_once(daemon: DaemonEnv) -> None:
    fault_injection(daemon)
    daemon.start()
    follower = Follower(daemon, "--kind", "actor")
    follower.wait_for(
        "the start of the gateway", lambda e: e["kind"] == "actor.started" and e["facts"]["actor"] == "gateway"
    )
    faulted = daemon.nua("call", "sys_fault", '["db_reader"]')
    assert faulted.returncode == 0, faulted.stderr
    restarted = follower.wait_for("the restart", lambda e: e["kind"] == "actor.restarted")
    assert restarted["facts"]["actor"] == "db_reader"
    assert "sys_fault('db_reader')" in restarted["facts"]["reason"]
    kinds = [e["kind"] for e in follower.seen]
    assert "actor.exited" in kinds, "the crash itself is shown before the restart"
    assert {e["kind"].split(".")[0] for e in follower.seen} == {"actor"}, "--kind actor shows only actor.*"
    # Exactly one restart event for the one restart.
    assert [e["facts"]["actor"] for e in events(daemon, "--kind", "actor.restarted")] == ["db_reader"]


def test_a_follower_goes_on_across_a_daemon_restart(daemon: DaemonEnv) -> None:
    first = daemon.start()
    follower = Follower(daemon)
    boot = follower.wait_for("an event", lambda e: e["seq"] == 1)["boot"]
    restarted = daemon.cli("restart")
    assert restarted.returncode == 0, restarted.stderr
    assert daemon.pid() != first
    notice = follower.wait_for("the new boot", lambda e: e["kind"] == "stream.boot")
    assert notice["facts"]["previous"] == boot
    assert notice["facts"]["boot"] != boot
    again = follower.wait_for("the new daemon's first event", lambda e: e["seq"] == 1)
    assert again["boot"] == notice["facts"]["boot"]


def test_changes_are_events_once_committed_naming_who_and_never_a_value(daemon: DaemonEnv) -> None:
    daemon.write_config(security={"scrypt_n": 1024})
    daemon.start()
    with Client(daemon.endpoint, timeout=10) as client:
        client.call("setting_set", "smtp.password", "s3cret-value")
        user = client.call("user_add", {"username": "c", "email": "c@x.org", "password": "s3cret-pass"})
        client.call("user_update", user["id"], "password", "s3cret-other")
        with pytest.raises(Exception, match="already taken"):  # rolled back: no event
            client.call("user_add", {"username": "c", "email": "d@x.org", "password": "s3cret-pass"})
        client.call("group_add", "ops")
        client.call("setting_delete", "smtp.password")
    shown = events(daemon, "--kind", "setting", "--kind", "user", "--kind", "group")
    assert [(e["kind"], e["facts"]) for e in shown] == [
        ("setting.changed", {"change": "set", "key": "smtp.password", "by": "(auth off)"}),
        ("user.changed", {"change": "add", "id": user["id"], "username": "c", "by": "(auth off)"}),
        ("user.changed", {"change": "update", "id": user["id"], "field": "password", "by": "(auth off)"}),
        ("group.changed", {"change": "add", "name": "ops", "by": "(auth off)"}),
        ("setting.changed", {"change": "delete", "key": "smtp.password", "count": 1, "by": "(auth off)"}),
    ]
    assert "s3cret" not in daemon.nua("events", "--json").stdout
    table = daemon.nua("events", "--kind", "group")
    assert table.returncode == 0, table.stderr
    (line,) = table.stdout.splitlines()
    assert "group.changed  change=add name=ops" in line


def test_a_reader_behind_the_bounded_history_is_told_how_many_it_missed(daemon: DaemonEnv) -> None:
    daemon.write_config(events={"history": 3})
    daemon.start()  # more than three actors start: the first events are gone
    shown = events(daemon)
    notice, *held = shown
    assert notice["kind"] == "stream.missed"
    assert notice["facts"]["missed"] >= 1
    assert [e["seq"] for e in held] == list(range(notice["facts"]["first_seq"], notice["facts"]["first_seq"] + 3))
    after = events(daemon, "--since", str(held[-1]["seq"]))
    assert after == []


def test_events_read_checks_its_params_and_a_bad_history_stops_the_start(daemon: DaemonEnv) -> None:
    daemon.start()
    with Client(daemon.endpoint, timeout=10) as client:
        for params, named in (
            ({"since": -1}, "since"),
            ({"limit": 0}, "limit"),
            ({"kinds": ["x"] * 33}, "kinds"),
            ({"kinds": [""]}, "kinds"),
            ({"timeout_s": -1}, "timeout_s"),
        ):
            with pytest.raises(InvalidParamsError) as refused:
                client.call("events_read", **params)
            assert refused.value.data == {"param": named}
    assert daemon.nua("events", "--since", "-3").returncode == 2
    assert daemon.cli("stop").returncode == 0
    daemon.write_config(events={"history": 0})
    result = daemon.cli("start")
    assert result.returncode == 6
    assert "[events] history must be from 1 to 1000000, got 0" in result.stderr


def test_events_f_without_a_daemon_says_so_at_once_instead_of_waiting(daemon: DaemonEnv) -> None:
    result = daemon.nua("events", "-f", timeout=30)
    assert result.returncode == 3
    (line,) = result.stderr.splitlines()
    assert "no daemon is running" in line


def _listening_on(daemon: DaemonEnv) -> str:
    found = runtime.read(runtime.record_path(daemon.pid_file))
    assert found is not None
    return found.endpoint


def test_a_follower_finds_a_daemon_restarted_on_another_port(daemon: DaemonEnv) -> None:
    daemon.write_config(zmq={"endpoint": "", "address": "127.0.0.1", "port": 0})  # any free port
    daemon.start()
    before = _listening_on(daemon)
    follower = Follower(daemon)
    boot = follower.wait_for("an event", lambda e: e["seq"] == 1)["boot"]
    assert daemon.cli("stop").returncode == 0
    with socket.socket() as probe:  # a port the kernel says is free, and not the old one (bound without reuse)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon.write_config(zmq={"endpoint": "", "address": "127.0.0.1", "port": port})
    daemon.start()
    assert _listening_on(daemon) != before
    notice = follower.wait_for("the new boot", lambda e: e["kind"] == "stream.boot")
    assert notice["facts"]["previous"] == boot
    with Client(_listening_on(daemon), timeout=WAIT_S) as client:
        client.call("setting_set", "site.name", "after the move")
    changed = follower.wait_for("the change", lambda e: e["kind"] == "setting.changed")
    assert changed["boot"] == notice["facts"]["boot"]


def test_a_follower_follows_a_rotated_server_key(daemon: DaemonEnv) -> None:
    daemon.write_config(zmq={"auth": "curve"})
    daemon.start()
    follower = Follower(daemon)
    boot = follower.wait_for("an event", lambda e: e["seq"] == 1)["boot"]
    rotated = daemon.cli("keys", "rotate-server")
    assert rotated.returncode == 0, rotated.stderr
    assert daemon.cli("restart").returncode == 0  # serves with the new key from now on
    notice = follower.wait_for("the new boot", lambda e: e["kind"] == "stream.boot")
    assert notice["facts"]["previous"] == boot
