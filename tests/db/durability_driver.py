"""Driver of the durability test: forks DB writers on request, each adding users until killed.

Protocol, one request a line on stdin: ``<database url> <fifo path>``. The driver
forks a child and answers its pid on stdout. The child's stdout is the FIFO: it
runs a DbWriter with several concurrent askers adding users, and writes each
username to the FIFO (unbuffered) only after the writer acknowledged it. Whatever
the test has read from the FIFO was therefore acknowledged before the child was
killed.

Forking from one driver pays Python's and SQLAlchemy's start-up once for all the
repetitions; the driver forks before any thread exists, so each child starts clean.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import nua.settings
from nua import log
from nua.actors.db_writer import DbWriter
from nua.actors.supervised import ChildContext
from nua.model.commands import AddUser

ASKERS = 4
# Any stored hash will do: what is tested is the row, not the password.
PASSWORD_HASH = "scrypt$16$1$1$c2FsdA$a2V5"  # noqa: S105 - a placeholder hash, no secret


def child(url: str, fifo: Path) -> None:
    out = os.open(fifo, os.O_WRONLY)
    os.dup2(out, 1)
    os.close(out)
    settings = nua.settings.load(
        environ={"NUA_DB_URL": url, "XDG_RUNTIME_DIR": str(fifo.parent), "XDG_STATE_HOME": str(fifo.parent)}
    )
    writer = DbWriter.start(ChildContext("db_writer", 1, lambda _exit: None), settings)
    lock = threading.Lock()

    def add_forever(asker: int) -> None:
        index = 0
        while True:
            name = f"a{asker}n{index}"
            writer.ask(AddUser(name, f"{name}@example.org", PASSWORD_HASH), timeout=30)
            with lock:
                os.write(1, f"{name}\n".encode())
            index += 1

    threads = [threading.Thread(target=add_forever, args=(asker,), daemon=True) for asker in range(ASKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    log.configure("warning", stream=sys.stderr)  # stdout carries acknowledgements only
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    for line in sys.stdin:
        url, fifo = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                child(url, Path(fifo))
            finally:
                os._exit(1)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
