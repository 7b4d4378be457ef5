"""How a cron run's daemon is named and later known to be gone: host, pid, start tick, boot, token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import psutil

from nua.actors import os_process
from nua.actors.cron_runs import daemon_instance, instance_alive

HOST = socket.gethostname()[:100]


def test_this_daemon_is_alive_by_its_own_name() -> None:
    instance = daemon_instance()
    host, pid, started, boot, _token = instance.split("/")
    assert (host, int(pid), boot) == (HOST, os.getpid(), os_process.boot_id())
    assert int(started) == os_process.start_ticks(os.getpid()) > 0
    assert instance_alive(instance) is True


def test_a_daemon_that_exited_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    started = os_process.start_ticks(child.pid)
    assert started is not None
    instance = f"{HOST}/{child.pid}/{started}/{os_process.boot_id()}/1"
    assert instance_alive(instance) is True
    child.communicate(b"")  # it exits and is reaped
    assert instance_alive(instance) is False


def test_a_pid_that_names_another_process_or_boot_now_is_not_the_daemon() -> None:
    pid, started, boot = os.getpid(), os_process.start_ticks(os.getpid()), os_process.boot_id()
    assert started is not None
    assert instance_alive(f"{HOST}/{pid}/{started + 1}/{boot}/1") is False
    # The same pid and start tick in an earlier boot: another process.
    assert instance_alive(f"{HOST}/{pid}/{started}/not{boot}/1") is False


def test_a_name_an_earlier_nua_gave_is_asked_about_its_way() -> None:
    # host/pid/psutil's start time/token: a daemon of the version before, on a shared database.
    created = psutil.Process().create_time()
    assert instance_alive(f"{HOST}/{os.getpid()}/{created:.3f}/1") is True
    assert instance_alive(f"{HOST}/{os.getpid()}/{created - 100:.3f}/1") is False


def test_a_daemon_on_another_host_is_not_ours_to_tell() -> None:
    assert instance_alive(f"not-{socket.gethostname()}/1/1/x/1") is None
    assert instance_alive(f"not-{socket.gethostname()}/1/1.0/1") is None
