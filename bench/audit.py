"""What the audit record costs a durable ``setting_set``: with and without it, side by side in one run.

Run: .venv/bin/python bench/audit.py [--seconds S] [--rounds R] [--writes N]

Two levels, each measured with and without the audit record in the same run,
in alternating rounds (medians reported), on SQLite with WAL and
``synchronous=FULL``:

- end to end, 8 client processes (bench/rpc.py's load) against real daemons,
  started as they are deployed (``nua-orchestrator start``: daemonised, JSON
  lines to their log file): one at ``log_level = "info"`` (the default), so
  that the log line of each state-changing call is written, one at
  ``"warning"`` (the record alone); on each, ``setting_set`` (audited by the
  dispatcher: the entry built and redacted in the gateway's thread, the change
  applied in its savepoint, the batch's records inserted together before its
  commit, the call's ``rpc_call`` line logged by the gateway once answered)
  beside ``bench_plain_set`` (bench/audit_bench_plugin.py), the same command
  sent by a method that declares no change, so nothing is recorded or logged;
- the DB writer alone, 8 asking threads (bench/db_writer.py's): the same
  setting writes as plain commands and as ``Audited`` commands.

Goal (issue 10): the audit record costs at most 10 % of ``setting_set``'s
8-client throughput.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import db_writer  # noqa: E402 - bench/ is on the path only from here
import rpc  # noqa: E402

from nua import log  # noqa: E402
from nua.model import commands as cmd  # noqa: E402
from nua.model.audit import AuditEntry  # noqa: E402

CLIENTS = 8


def config_text(tmp: Path, endpoint: str, log_level: str) -> str:
    return f"""
[server]
pid_file = "{tmp}/run/nua.pid"
exit_flag = "{tmp}/run/nua.exit"
log_file = "{tmp}/nua.log"
log_level = "{log_level}"
[zmq]
endpoint = "{endpoint}"
# Plaintext, as bench/rpc.py's setting_set peer: what is compared is the audit record alone.
auth = "none"
[db]
url = "sqlite:///{tmp}/nua.db"
sqlite_synchronous = "FULL"
[rpc]
plugins = ["audit_bench_plugin"]
[debug]
# rpc.wait_answering's probe (test_add) needs the test methods.
test_methods = true
"""


# The phases of the end-to-end run: (daemon, method), each daemon with its own database.
PHASES = (
    ("info", "bench_plain_set"),
    ("info", "setting_set"),
    ("warning", "bench_plain_set"),
    ("warning", "setting_set"),
)


def end_to_end(opts: argparse.Namespace) -> dict[tuple[str, str], dict[str, float]]:
    """Median figures of each phase, 8 clients, alternating rounds: two daemons, at log levels info and warning."""
    with tempfile.TemporaryDirectory(prefix="nua-bench-audit-") as tmp_name, ExitStack() as stack:
        endpoints, daemons = {}, {}
        # The plugin alone on the daemons' path: bench/ holds modules named as the standard library's (http.py).
        plugins = Path(tmp_name) / "plugins"
        plugins.mkdir()
        shutil.copy(HERE / "audit_bench_plugin.py", plugins)
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{plugins}"}
        for level in ("info", "warning"):
            tmp = Path(tmp_name) / level
            tmp.mkdir()
            endpoints[level] = rpc.free_endpoint()
            config = tmp / "nua.toml"
            config.write_text(config_text(tmp, endpoints[level], level), encoding="utf-8")
            daemons[level] = stack.enter_context(daemonised(config, tmp / "run" / "nua.pid", env))
            rpc.wait_answering(endpoints[level], 30)
        audited_calls = dict.fromkeys(endpoints, 0.0)
        for level, method in PHASES:  # warm-up
            calls = rpc.run_clients(endpoints[level], method, CLIENTS, seconds=1.0)["calls"]
            audited_calls[level] += calls if method == "setting_set" else 0
        rounds: dict[tuple[str, str], list[dict[str, float]]] = {}
        for _ in range(opts.rounds):
            for level, method in PHASES:
                cpu = cpu_seconds(daemons[level])
                figures = rpc.run_clients(endpoints[level], method, CLIENTS, seconds=opts.seconds)
                figures["cpu_us"] = (cpu_seconds(daemons[level]) - cpu) / figures["calls"] * 1e6
                rounds.setdefault((level, method), []).append(figures)
                audited_calls[level] += figures["calls"] if method == "setting_set" else 0
        newest = {}
        for level, endpoint in endpoints.items():
            with rpc.Client(endpoint, timeout=10) as client:
                newest[level] = client.call("audit_list", limit=1)["items"][0]
        stack.close()  # the daemons stop: a stopping writer writes every line it has queued
        for level in endpoints:
            log_text = (Path(tmp_name) / level / "nua.log").read_text(encoding="utf-8")
            lines = log_text.count('"event": "rpc_call"')
            print(
                f"  ({level} daemon: {newest[level]['id']:.0f} audit records, {lines} log lines"
                f" for {audited_calls[level]:.0f} audited calls)"
            )
    return {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for name, runs in rounds.items()}


@contextmanager
def daemonised(config: Path, pid_file: Path, env: dict[str, str]) -> Iterator[psutil.Process]:
    """A daemon started as deployed (``start``: it daemonises, ready when the command returns); stopped after."""
    daemon = [rpc.PY, "-m", "nua.daemon.cli", "--config", str(config)]
    subprocess.run([*daemon, "start"], check=True, capture_output=True, env=env, timeout=60)
    try:
        yield psutil.Process(int(pid_file.read_text(encoding="utf-8").split()[0]))
    finally:
        subprocess.run([*daemon, "stop"], check=False, capture_output=True, env=env, timeout=60)


def cpu_seconds(process: psutil.Process) -> float:
    """The CPU time ``process`` has used, user and system: per call, a figure less swayed by the machine's load."""
    times = process.cpu_times()
    return float(times.user + times.system)


class AuditedSettings(db_writer.Workload):
    """bench/db_writer.py's setting writes, each as ``Audited`` with its entry (built in the asker's thread)."""

    def command(self, tag: str, index: int) -> Any:
        plain = super().command(tag, index)
        entry = AuditEntry.of("bench", "operator", "setting_set", {"key": plain.key, "value": plain.value})
        return cmd.Audited(plain, entry)


def writer_level(opts: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Median writes/s and CPU µs per write through the DB writer, 8 askers, plain and audited, alternating runs."""
    rates: dict[str, list[float]] = {"plain": [], "audited": []}
    cpus: dict[str, list[float]] = {"plain": [], "audited": []}
    with tempfile.TemporaryDirectory(prefix="nua-bench-audit-writer-") as tmp_name:
        tmp = Path(tmp_name)
        settings = db_writer.load_settings(f"sqlite:///{tmp}/writer.db", "FULL", state=tmp)
        workloads = {"plain": db_writer.Workload("setting_set", ""), "audited": AuditedSettings("setting_set", "")}
        for run in range(opts.rounds):
            for name, workload in workloads.items():
                cpu = time.process_time()
                rate, _ = db_writer.through_writer(settings, workload, f"{name}{run}", opts.writes, CLIENTS)
                cpus[name].append((time.process_time() - cpu) / opts.writes * 1e6)
                rates[name].append(rate)
    return {name: (statistics.median(rates[name]), statistics.median(cpus[name])) for name in rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each end-to-end phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--writes", type=int, default=4000, help="writes per writer-level run")
    opts = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus; load {os.getloadavg()}")
    print(f"SQLite WAL synchronous=FULL, {CLIENTS} clients; medians of {opts.rounds} alternating rounds\n")

    print("end to end: real daemons, 8 client processes (durable writes/s, latency ms)")
    e2e = end_to_end(opts)
    for (level, method), figures in e2e.items():
        name = f"{'audited ' if method == 'setting_set' else 'plain '}setting_set, log_level {level}"
        print(
            f"  {name:<40} {figures['per_s']:8.0f}/s   p50 {figures['p50_us'] / 1000:.2f}   "
            f"p99 {figures['p99_us'] / 1000:.2f}   daemon CPU {figures['cpu_us']:5.0f} µs/call"
        )
    for level, said in (("info", "record and log line"), ("warning", "record only (info lines off)")):
        plain, audited = e2e[(level, "bench_plain_set")], e2e[(level, "setting_set")]
        print(
            f"  audited/plain, {said}: throughput {audited['per_s'] / plain['per_s']:.3f} (goal >= 0.90),"
            f" daemon CPU per call {audited['cpu_us'] / plain['cpu_us']:.3f}"
        )

    log.configure("error")
    logging.disable(logging.WARNING)
    print("\nDB writer alone, 8 asking threads (durable writes/s)")
    writer = writer_level(opts)
    for name, label in (("plain", "plain SetSetting"), ("audited", "Audited(SetSetting)")):
        print(f"  {label:<20} {writer[name][0]:8.0f}/s   CPU {writer[name][1]:5.0f} µs/write")
    (plain_rate, plain_cpu), (audited_rate, audited_cpu) = writer["plain"], writer["audited"]
    print(f"  audited/plain: throughput {audited_rate / plain_rate:.3f}, CPU per write {audited_cpu / plain_cpu:.3f}")
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
