"""How a cron run's daemon is named and later known to be gone: host, pid, start tick, token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from nua.actors import os_process
from nua.actors.cron_runs import daemon_instance, instance_alive


def test_this_daemon_is_alive_by_its_own_name() -> None:
    instance = daemon_instance()
    host, pid, started, _token = instance.split("/")
    assert (host, int(pid)) == (socket.gethostname()[:100], os.getpid())
    assert int(started) == os_process.start_ticks(os.getpid()) > 0
    assert instance_alive(instance) is True


def test_a_daemon_that_exited_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    started = os_process.start_ticks(child.pid)
    assert started is not None
    instance = f"{socket.gethostname()[:100]}/{child.pid}/{started}/1"
    assert instance_alive(instance) is True
    child.communicate(b"")  # it exits and is reaped
    assert instance_alive(instance) is False


def test_a_pid_that_names_another_process_now_is_not_the_daemon() -> None:
    started = os_process.start_ticks(os.getpid())
    assert started is not None
    assert instance_alive(f"{socket.gethostname()[:100]}/{os.getpid()}/{started + 1}/1") is False
    # What an earlier nua wrote there (seconds since the epoch) names no process it can tell.
    assert instance_alive(f"{socket.gethostname()[:100]}/{os.getpid()}/1732800000.123/1") is False


def test_a_daemon_on_another_host_is_not_ours_to_tell() -> None:
    assert instance_alive(f"not-{socket.gethostname()}/1/1/1") is None
