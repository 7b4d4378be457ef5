"""The pid file lock and sd_notify, in-process."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nua import pidfile
from nua.daemon import notify
from nua.pidfile import AlreadyRunningError, PidFile


def test_acquire_writes_our_pid_and_locks(tmp_path: Path) -> None:
    path = tmp_path / "nua.pid"
    held = PidFile(path)
    held.acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    assert pidfile.inspect(path) == pidfile.PidFileState(exists=True, locked=True, pid=os.getpid())
    # flock locks belong to an open file description: a second one conflicts even in this process.
    with pytest.raises(AlreadyRunningError) as caught:
        PidFile(path).acquire()
    assert caught.value.pid == os.getpid()
    assert not pidfile.remove_stale(path), "a held pid file is not stale"
    held.release()
    assert not path.exists()
    assert pidfile.inspect(path) == pidfile.PidFileState(exists=False, locked=False, pid=None)


def test_a_stale_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "nua.pid"
    path.write_text("1\n")  # pid 1 lives, but holds no lock on this file
    assert pidfile.inspect(path) == pidfile.PidFileState(exists=True, locked=False, pid=1)
    held = PidFile(path)
    held.acquire()
    assert pidfile.read_pid(path) == os.getpid()
    held.release()


def test_the_lock_outlives_nothing_but_the_process(tmp_path: Path) -> None:
    path = tmp_path / "nua.pid"
    code = (
        "import sys; from nua.pidfile import PidFile; PidFile(sys.argv[1]).acquire();"
        " print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        assert pidfile.inspect(path).locked
        with pytest.raises(AlreadyRunningError):
            PidFile(path).acquire()
    finally:
        holder.kill()  # as kill -9: no cleanup runs
        holder.wait()
    assert pidfile.inspect(path) == pidfile.PidFileState(exists=True, locked=False, pid=holder.pid)
    assert pidfile.remove_stale(path)
    assert not path.exists()


def test_racing_acquirers_have_exactly_one_winner(tmp_path: Path) -> None:
    path = tmp_path / "nua.pid"
    path.write_text("1\n")  # stale: every racer tries to replace it at once
    for _ in range(50):
        files = [PidFile(path) for _ in range(8)]
        barrier = threading.Barrier(len(files))
        winners: list[PidFile] = []

        def race(candidate: PidFile, barrier: threading.Barrier = barrier, winners: list[PidFile] = winners) -> None:
            barrier.wait()
            try:
                candidate.acquire(pid=1234)
            except AlreadyRunningError:
                return
            winners.append(candidate)

        threads = [threading.Thread(target=race, args=(f,)) for f in files]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(winners) == 1
        assert pidfile.inspect(path).locked
        # The winner "dies": its lock goes, its file stays, stale for the next round.
        fd, winners[0]._fd = winners[0]._fd, None
        assert fd is not None
        os.close(fd)
        assert not pidfile.inspect(path).locked
    assert not list(tmp_path.glob(".nua.pid.*")), "no temporary file left behind"


def test_notify_sends_one_datagram(tmp_path: Path) -> None:
    address = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(address))
        assert notify.notify("READY=1", {"NOTIFY_SOCKET": str(address)})
        assert receiver.recv(64) == b"READY=1"


def test_notify_abstract_namespace() -> None:
    name = f"nua-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        assert notify.notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name})
        assert receiver.recv(64) == b"STOPPING=1"


def test_notify_without_systemd_sends_nothing(tmp_path: Path) -> None:
    assert not notify.notify("READY=1", {})
    assert not notify.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})


def test_an_inspection_in_progress_does_not_look_like_a_daemon(tmp_path: Path) -> None:
    path = tmp_path / "nua.pid"
    path.write_text("1\n")
    # An inspector (status, a starter's check) holds a shared lock for a moment.
    probe = os.open(path, os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH)
    release = threading.Timer(0.05, os.close, args=(probe,))
    release.start()
    held = PidFile(path)
    held.acquire()  # waits out the probe instead of reporting "already running"
    release.join()
    assert pidfile.read_pid(path) == os.getpid()
    held.release()
