"""Restart latency: from a child's crash to its replacement answering an ask.

Run: .venv/bin/python bench/restart.py [--crashes N]
Prints the median and p99 over N crashes (default 1,000), beside the cost of a bare
pykka actor start + ask on this machine (the floor any restart pays), with the
Python version.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time
from importlib.metadata import version
from typing import Any

import pykka

from nua import log
from nua.actors.directory import Directory
from nua.actors.messages import Crash, Exited, Ping
from nua.actors.supervised import ChildContext, SupervisedActor
from nua.actors.supervisor import ChildSpec, Intensity, Supervisor


class Worker(SupervisedActor):
    pass


class Bare(pykka.ThreadingActor):
    use_daemon_thread = True

    def on_receive(self, message: Any) -> Any:
        return message


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=1000)
    args = parser.parse_args()
    log.configure("error")
    logging.disable(logging.CRITICAL)  # each crash logs its traceback; keep them off the console

    directory = Directory()
    exits: list[Exited] = []
    root = Supervisor.start(
        ChildContext("root", 0, exits.append),
        [ChildSpec("worker", Worker.start)],
        intensity=Intensity(max_restarts=args.crashes + 1, max_seconds=3600),
        directory=directory,
    )
    root.ask(Ping(), timeout=5)

    restart_ms: list[float] = []
    for _ in range(args.crashes):
        old = directory.wait_for("worker", 5)
        begun = time.perf_counter()
        old.tell(Crash())
        new = directory.wait_for("worker", 5, not_ref=old)
        new.ask(Ping(), timeout=5)
        restart_ms.append((time.perf_counter() - begun) * 1000)
    root.stop(timeout=5)

    start_ms: list[float] = []
    for _ in range(args.crashes):
        begun = time.perf_counter()
        ref = Bare.start()
        ref.ask(Ping(), timeout=5)
        start_ms.append((time.perf_counter() - begun) * 1000)
        ref.stop()

    print(f"python {platform.python_version()} ({platform.python_implementation()}), pykka {version('pykka')}")
    print(f"crash -> replacement answers ask, {args.crashes} crashes:")
    print(f"  median {statistics.median(restart_ms):.3f} ms   p99 {percentile(restart_ms, 0.99):.3f} ms")
    print("peer: bare pykka actor start -> answers ask (no supervision):")
    print(f"  median {statistics.median(start_ms):.3f} ms   p99 {percentile(start_ms, 0.99):.3f} ms")
    print(f"ratio restart/bare start (median): {statistics.median(restart_ms) / statistics.median(start_ms):.2f}x")
    if any(e.error for e in exits):
        raise SystemExit(f"the supervisor gave up: {exits}")


if __name__ == "__main__":
    main()
