"""The process loop's group signal: sent while the leader is unreaped, refused once the loop has reaped it."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servicekit import WAIT_S

from nua.actors import os_process
from nua.actors.process_loop import ProcessLoop
from nua.actors.service_log import ServiceLog

# A shell whose group holds one more sleeping process besides itself.
FAMILY = "sleep 300 & exec sleep 301"


@pytest.fixture
def loop() -> Iterator[ProcessLoop]:
    made = ProcessLoop()
    made.start()
    yield made
    made.stop()


def test_signal_group_reaches_every_member_then_refuses_a_reaped_leader(loop: ProcessLoop, tmp_path: Path) -> None:
    codes: list[int] = []
    exited = threading.Event()

    def on_exit(code: int) -> None:
        codes.append(code)
        exited.set()

    popen = loop.spawn(
        lambda: subprocess.Popen(["sh", "-c", FAMILY], stdout=subprocess.PIPE, start_new_session=True),
        loop.open_log(ServiceLog(tmp_path / "family.log", 1 << 20, 1)),
        on_exit,
    )
    identity = os_process.Identity.of(popen.pid)
    assert identity is not None
    deadline = time.monotonic() + WAIT_S
    while not os_process.descendant_pids(popen.pid) and time.monotonic() < deadline:
        time.sleep(0.01)  # the shell forks its first sleep: no event says when
    assert len(os_process.descendant_pids(popen.pid)) == 1
    assert os_process.group_members(popen.pid, identity.create_time)
    assert loop.signal_group(popen.pid, signal.SIGTERM) is True
    assert exited.wait(WAIT_S)
    assert codes == [-signal.SIGTERM]
    assert os_process.wait_gone(os_process.group_members(popen.pid, identity.create_time), WAIT_S) == []
    # Reaped: its pid may be another process's now, so the loop refuses to signal it.
    assert loop.signal_group(popen.pid, signal.SIGTERM) is False
    assert popen.pid not in loop.owned()
