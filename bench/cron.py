"""Cron: a daemon with 10,000 scheduled jobs beside the same daemon with none.

Run: .venv/bin/python bench/cron.py [--jobs 10000] [--probes 20] [--window-s 60] [--idle-s 20] [--rounds 2]

Each round starts two daemons in turn on fresh SQLite databases, from settings files
declaring the jobs (``[jobs.NAME]``): one with ``--jobs`` daily jobs spread over the
day (``M H * * *``, a few of which fire during the run, as on a real platform) plus
``--probes`` command jobs and as many call jobs (``user_count``) ``every 2s``, their fires
spread over the 2 s by ``jitter_s`` (the lateness is counted from each fire's due time,
jitter included), the other with the probes only. Each command probe's process writes its own start time (``date
+%s%N``): its lateness is that stamp minus the fire's scheduled time, the whole way from
the timer to a running process (claim committed, fork, exec). A call probe's lateness
is its run's ``started_at`` (the claim's transaction) minus its scheduled time: the
scheduler alone. Printed per daemon: the start-up time (``nua-orchestrator start``
until it answers ready; on a fresh database, then again with the jobs stored), both
latenesses (median, p99) over ``--window-s``, then idle CPU and RSS over ``--idle-s``
with the probes paused, and the ratios of the two daemons measured in the same round,
with the load average.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import toml

from nua.actors.cron_plan import jitter
from nua.job_settings import JobConfig, parse_job
from nua.rpc.client import Client

PROBE_S = 2
# The probes' fires are spread over their period (each fire's delay is fixed: see nua.actors.cron_plan.jitter),
# so that they do not all start at the same instant and queue behind each other.
JITTER_S = 1.9
WAIT_S = 120.0


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def settings(root: Path, jobs: int, probes: int) -> dict[str, Any]:
    user = {"user": "root"} if os.geteuid() == 0 else {}
    spread = random.Random(12)
    declared: dict[str, Any] = {
        f"daily{i}": {"schedule": f"{spread.randrange(60)} {spread.randrange(24)} * * *", "call": "user_count"}
        for i in range(jobs)
    }
    stamps = root / "stamps"
    stamps.mkdir()
    for i in range(probes):
        declared[f"call{i}"] = {"schedule": f"every {PROBE_S}s", "call": "user_count", "jitter_s": JITTER_S}
        declared[f"probe{i}"] = {
            "schedule": f"every {PROBE_S}s",
            "command": f"date +%s%N >> {stamps}/probe{i}",
            "shell": True,
            "jitter_s": JITTER_S,
            **user,
        }
    run = Path(tempfile.mkdtemp(prefix="nua-bench-"))
    return {
        "server": {"pid_file": str(run / "nua.pid"), "log_file": str(root / "nua.log"), "log_level": "warning"},
        "zmq": {"endpoint": f"ipc://{run}/nua.sock", "auth": "none"},
        "db": {"url": f"sqlite:///{root}/nua.db"},
        "jobs": declared,
    }


def probe(name: str) -> JobConfig:
    made, _ = parse_job(name, {"schedule": f"every {PROBE_S}s", "call": "user_count", "jitter_s": JITTER_S}, "bench")
    assert made is not None  # noqa: S101 - a constant table
    return made


def due_ns(name: str, fire_ns: int) -> int:
    """When the probe's fire at ``fire_ns`` is due: the fire plus its jitter, as the actor computes it."""
    fire = datetime.fromtimestamp(fire_ns / 1e9, UTC)
    return fire_ns + int(jitter(probe(name), fire).total_seconds() * 1e9)


def lateness_ms(stamps: Path, since_ns: int) -> list[float]:
    """Each command probe run's start stamp minus when its fire was due (its multiple of PROBE_S plus jitter)."""
    late = []
    period = PROBE_S * 10**9
    for path in stamps.iterdir():
        for line in path.read_text().split():
            stamp = int(line)
            if stamp < since_ns:
                continue
            fire = stamp - stamp % period
            if due_ns(path.name, fire) > stamp:
                fire -= period
            late.append((stamp - due_ns(path.name, fire)) / 1e6)
    return late


def claim_lateness_ms(client: Client, probes: int, since_ns: int) -> list[float]:
    """Each call probe's run: its start (the claim's transaction, then the call) minus its scheduled time."""
    late = []
    for i in range(probes):
        for run in client.call("cron_history", name=f"call{i}", limit=1000)["items"]:
            scheduled = datetime.fromisoformat(run["scheduled_at"])
            if run["started_at"] is not None and scheduled.timestamp() * 1e9 >= since_ns:
                due = scheduled + jitter(probe(f"call{i}"), scheduled)
                late.append((datetime.fromisoformat(run["started_at"]) - due).total_seconds() * 1000)
    return late


def daemon_pid(config: dict[str, Any]) -> int:
    return int(Path(config["server"]["pid_file"]).read_text().split()[0])


def one(jobs: int, probes: int, window_s: float, idle_s: float) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="nua-cron-bench-"))
    config = settings(root, jobs, probes)
    path = root / "nua.toml"
    path.write_text(toml.dumps(config))
    daemon = [sys.executable, "-m", "nua.daemon.cli", "--config", str(path)]
    began = time.perf_counter()
    subprocess.run([*daemon, "start"], check=True, capture_output=True)
    startup_s = time.perf_counter() - began
    pid = daemon_pid(config)
    try:
        time.sleep(PROBE_S * 2)  # the first fires after the start, then measure
        since = time.time_ns()
        time.sleep(window_s)
        late = lateness_ms(root / "stamps", since)
        with Client(config["zmq"]["endpoint"], 30) as client:
            claimed = claim_lateness_ms(client, probes, since)
            for i in range(probes):
                client.call("cron_pause", f"probe{i}")
                client.call("cron_pause", f"call{i}")
        process = psutil.Process(pid)
        time.sleep(1.0)
        before = process.cpu_times()
        started = time.monotonic()
        time.sleep(idle_s)
        after = process.cpu_times()
        spent = (after.user - before.user) + (after.system - before.system)
        cpu = 100.0 * spent / (time.monotonic() - started)
        rss = process.memory_info().rss / 1048576
    finally:
        subprocess.run([*daemon, "stop"], check=False, capture_output=True, timeout=WAIT_S)
    # Again on the same database: the jobs are stored, as at every start but the first.
    began = time.perf_counter()
    subprocess.run([*daemon, "start"], check=True, capture_output=True)
    restart_s = time.perf_counter() - began
    subprocess.run([*daemon, "stop"], check=False, capture_output=True, timeout=WAIT_S)
    return {
        "first start (s)": startup_s,
        "start, jobs stored (s)": restart_s,
        "lateness median (ms)": statistics.median(late) if late else float("nan"),
        "lateness p99 (ms)": percentile(late, 0.99) if late else float("nan"),
        "fires measured": float(len(late)),
        "claim late median (ms)": statistics.median(claimed) if claimed else float("nan"),
        "claim late p99 (ms)": percentile(claimed, 0.99) if claimed else float("nan"),
        "idle CPU (%)": cpu,
        "RSS (MiB)": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--window-s", type=float, default=60.0)
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    for round_number in range(1, args.rounds + 1):
        # Interleaved, and the order swapped each round: neither always runs on a warmer machine.
        order = [("10k", args.jobs), ("none", 0)] if round_number % 2 else [("none", 0), ("10k", args.jobs)]
        results = {label: one(count, args.probes, args.window_s, args.idle_s) for label, count in order}
        print(f"round {round_number} (load average {os.getloadavg()[0]:.2f}):")
        for key in results["none"]:
            many, none = results["10k"][key], results["none"][key]
            ratio = f"{many / none:.2f}x" if none else "-"
            print(f"  {key:22} {args.jobs} jobs: {many:9.2f}   none: {none:9.2f}   ratio {ratio}")


if __name__ == "__main__":
    main()
