"""The runtime record file itself: written atomically and private, read bounded and checked, trusted only when live."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nua import runtime
from nua.pidfile import PidFile

SETTINGS_ENDPOINT = "tcp://127.0.0.1:5999"


def a_record(pid: int | None = None, endpoint: str | None = "tcp://127.0.0.1:41000") -> runtime.Record:
    return runtime.Record(
        pid=os.getpid() if pid is None else pid,
        started_at=1_700_000_000.5,
        version="0.1.0",
        endpoint=endpoint,
        settings_endpoint="tcp://127.0.0.1:0",
        config_file="/etc/nua/nua.toml",
    )


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """A pid file whose lock this process holds, as a running daemon's is."""
    pid_file = PidFile(tmp_path / "nua.pid")
    pid_file.acquire()
    try:
        yield pid_file.path
    finally:
        pid_file.release()


def test_written_private_read_back_and_found_while_its_pid_holds_the_lock(held: Path) -> None:
    path = runtime.record_path(held)
    assert path == held.parent / "nua.runtime.json"
    previous = os.umask(0)
    try:
        runtime.write(path, a_record())
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in held.parent.iterdir() if p.name.endswith(".part")] == []
    assert runtime.read(path) == a_record()
    assert runtime.locate(held, SETTINGS_ENDPOINT) == runtime.Located("tcp://127.0.0.1:41000", a_record(), None)


def test_a_record_whose_pid_does_not_hold_the_lock_is_stale(held: Path, tmp_path: Path) -> None:
    runtime.write(runtime.record_path(held), a_record(pid=os.getpid() + 1))
    found = runtime.locate(held, SETTINGS_ENDPOINT)
    assert (found.endpoint, found.record) == (SETTINGS_ENDPOINT, None)
    assert found.problem is not None
    assert "does not hold the lock" in found.problem

    unlocked = tmp_path / "other.pid"
    unlocked.write_text(f"{os.getpid()}\n")
    runtime.write(runtime.record_path(unlocked), a_record())
    assert runtime.locate(unlocked, SETTINGS_ENDPOINT).record is None


def test_no_record_is_no_problem(tmp_path: Path) -> None:
    assert runtime.locate(tmp_path / "nua.pid", SETTINGS_ENDPOINT) == runtime.Located(SETTINGS_ENDPOINT, None, None)


def test_a_daemon_without_rpc_is_recorded_without_endpoint(held: Path) -> None:
    runtime.write(runtime.record_path(held), a_record(endpoint=None))
    found = runtime.locate(held, SETTINGS_ENDPOINT)
    assert (found.endpoint, found.record, found.problem) == (SETTINGS_ENDPOINT, a_record(endpoint=None), None)


GOOD = {"format": runtime.FORMAT, **a_record().as_dict()}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"pid": 0}, "pid is not a positive integer"),
        ({"pid": True}, "pid is not a positive integer"),
        ({"pid": 1.5}, "pid is not a positive integer"),
        ({"started_at": "yesterday"}, "started_at is not a time"),
        ({"started_at": -1}, "started_at is not a time"),
        ({"version": ""}, "version is not a printable string"),
        ({"version": "x" * 65}, "version is not a printable string"),
        ({"endpoint": "ipc://"}, "endpoint names no socket file"),
        ({"endpoint": "tcp://127.0.0.1:0"}, "endpoint has no usable host and port"),
        ({"endpoint": "tcp://:5001"}, "endpoint has no usable host and port"),
        ({"endpoint": "inproc://x"}, "endpoint is neither tcp:// nor ipc://"),
        ({"endpoint": "tcp://127.0.0.1:1\n"}, "endpoint is not a printable string"),
        ({"endpoint": 5001}, "endpoint is not a printable string"),
        ({"settings_endpoint": None}, "settings_endpoint is not a printable string"),
        ({"config_file": ["a"]}, "config_file is not a printable string"),
        ({"format": 1}, "unknown format"),  # before the server key
        ({"format": 2.0}, "unknown format"),
        ({"server_key": "not a key"}, "server_key is not a CURVE public key"),
        ({"server_key": 5}, "server_key is not a CURVE public key"),
        ({"http": "ftp://127.0.0.1:8080"}, "http is not an http:// or https:// URL"),
        ({"http": ""}, "http is not a printable string"),
        ({"serving": 1}, "serving is not true or false"),
        ({"serving": None}, "serving is not true or false"),
    ],
)
def test_every_field_is_checked(tmp_path: Path, changes: dict[str, object], reason: str) -> None:
    path = tmp_path / "nua.runtime.json"
    path.write_text(json.dumps({**GOOD, **changes}))
    path.chmod(0o600)
    with pytest.raises(runtime.RecordError, match=reason):
        runtime.read(path)


def test_the_http_url_is_read_and_a_record_older_than_it_has_none(tmp_path: Path) -> None:
    path = tmp_path / "nua.runtime.json"
    path.write_text(json.dumps({**GOOD, "http": "https://127.0.0.1:8443"}))
    path.chmod(0o600)
    read = runtime.read(path)
    assert read is not None
    assert read.http == "https://127.0.0.1:8443"
    older = {key: value for key, value in GOOD.items() if key != "http"}
    path.write_text(json.dumps(older))
    read = runtime.read(path)
    assert read is not None
    assert read.http is None


def test_a_record_of_a_nua_that_wrote_it_once_serving_reads_as_serving(tmp_path: Path) -> None:
    path = tmp_path / "nua.runtime.json"
    older = {key: value for key, value in GOOD.items() if key != "serving"}
    path.write_text(json.dumps(older))
    path.chmod(0o600)
    assert runtime.read(path) == a_record()._replace(serving=True)
    path.write_text(json.dumps({**GOOD, "serving": False}))
    found = runtime.read(path)
    assert found is not None
    assert not found.serving


def test_the_read_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "nua.runtime.json"
    path.write_bytes(json.dumps(GOOD).encode() + b" " * runtime.MAX_RECORD_BYTES)
    path.chmod(0o600)
    with pytest.raises(runtime.RecordError, match="larger than"):
        runtime.read(path)


def test_one_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    path = tmp_path / "nua.runtime.json"
    runtime.write(path, a_record())
    os.chown(path, 65534, 65534)
    with pytest.raises(runtime.RecordError, match="belongs to uid 65534"):
        runtime.read(path)


def test_removal_spares_a_newer_daemons_record(tmp_path: Path) -> None:
    path = tmp_path / "nua.runtime.json"
    mine = runtime.write(path, a_record())
    runtime.write(path, a_record(pid=os.getpid() + 1))  # a newer daemon renamed its own over ours
    assert not runtime.remove(path, mine)
    assert runtime.read(path) == a_record(pid=os.getpid() + 1)
    assert not runtime.remove_if_pid(path, os.getpid())
    assert runtime.remove_if_pid(path, os.getpid() + 1)
    assert not path.exists()
