"""Nothing acknowledged is lost: a process adding users is killed with SIGKILL at a random moment, 20 times."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from dbkit import Writers, every_item, make_settings

from nua.model import commands as cmd

DRIVER = Path(__file__).with_name("durability_driver.py")
REPETITIONS = 20


def kill_at_random(driver: subprocess.Popen[str], url: str, fifo: Path, rng: random.Random) -> list[str]:
    """Start one writer process, kill it after a random number of acknowledgements; return them all."""
    assert driver.stdin is not None
    assert driver.stdout is not None
    os.mkfifo(fifo)
    driver.stdin.write(f"{url} {fifo}\n")
    driver.stdin.flush()
    pid = int(driver.stdout.readline())
    acknowledged: list[str] = []
    with fifo.open(encoding="utf-8") as acks:
        for _ in range(rng.randint(1, 400)):
            line = acks.readline()
            if not line:
                break
            acknowledged.append(line.strip())
        os.kill(pid, signal.SIGKILL)
        # What was written before the kill is still in the pipe: acknowledged too.
        acknowledged += acks.read().split()
    return acknowledged


def test_every_acknowledged_add_survives_kill_9(tmp_path: Path) -> None:
    rng = random.Random()
    driver = subprocess.Popen(
        [sys.executable, str(DRIVER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for repetition in range(REPETITIONS):
            database = tmp_path / f"run{repetition}.db"
            url = f"sqlite:///{database}"
            acknowledged = kill_at_random(driver, url, tmp_path / f"run{repetition}.fifo", rng)
            assert acknowledged, "the writer process acknowledged nothing"

            engine = sa.create_engine(url)
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            engine.dispose()
            writers = Writers(make_settings(url, tmp_path))
            try:
                reopened = writers.start()
                found = {user["username"] for user in every_item(reopened, cmd.ListUsers(names=tuple(acknowledged)))}
                assert set(acknowledged) <= found, f"run {repetition}: lost {sorted(set(acknowledged) - found)}"
                assert reopened.ask(cmd.CountUsers()) >= len(acknowledged)
            finally:
                writers.stop_all()
    finally:
        assert driver.stdin is not None
        driver.stdin.close()
        try:
            driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(driver.pid, signal.SIGKILL)
            driver.wait()
