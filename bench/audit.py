"""What the audit record costs a durable ``setting_set``: with and without it, side by side in one run.

Run: .venv/bin/python bench/audit.py [--seconds S] [--rounds R] [--writes N]
     .venv/bin/python bench/audit.py --instructions [--calls N]

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

``--instructions`` measures instead what the load of this shared machine does
not sway: the instructions the daemon runs per call, counted by valgrind's
callgrind (every thread, each apart). One daemon per log level (``warning``: the
record alone; ``info``: the record and the ``rpc_call`` line), started as above
under callgrind, instrumentation switched on once it answers; both methods warmed
up; then plain, audited, plain, audited: each phase 8 clients x ``--calls`` calls
between a zeroing of the counters and a dump. Printed per level: instructions per
call, audited/plain, the extra per call and how it splits among the daemon's
threads (named by the functions they ran), the writer's syncs per call (its group
commits, which follow the threads' timing under callgrind) and, with the cost of a
sync from a phase of 1 client, the same at equal syncs. About 6 minutes.

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
from typing import Any, NamedTuple

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


def end_to_end(opts: argparse.Namespace) -> dict[tuple[str, str], list[dict[str, float]]]:
    """Each round's figures of each phase, 8 clients: two daemons, at log levels info and warning.

    Within a round, each daemon's two phases run back to back, plain first in even
    rounds and audited first in odd ones, so that a drift of the shared machine's
    speed weighs on both alike; a round's ratio compares two neighbouring phases.
    """
    with tempfile.TemporaryDirectory(prefix="nua-bench-audit-") as tmp_name, ExitStack() as stack:
        endpoints, daemons = {}, {}
        plugins = rpc.audit_plugin_dir(Path(tmp_name))
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
        for round_number in range(opts.rounds):
            for level, method in PHASES if round_number % 2 == 0 else _swapped(PHASES):
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
    return rounds


def _swapped(phases: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``phases`` with the two phases of each daemon in the other order."""
    return tuple(phase for pair in zip(phases[::2], phases[1::2], strict=True) for phase in reversed(pair))


def median_figures(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over ``runs``."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


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
    """bench/db_writer.py's setting writes, each as ``Audited`` with its entry (built in the asker's thread).

    The entry as the gateway builds a ``setting_set(key, n)`` call's (its params by the
    method's names), not the general path a nested value takes: the writer's work is
    what this level measures.
    """

    def command(self, tag: str, index: int) -> Any:
        plain = super().command(tag, index)
        entry = AuditEntry.of_named("bench", "operator", "setting_set", _SET_NAMES, (plain.key, index))
        return cmd.Audited(plain, entry)


_SET_NAMES = ("key", "value")


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


# --instructions: the daemon under callgrind. --trace-children: the daemon is a fork of
# `start`, and only a traced child gets a gdbserver of its own (callgrind_control's way in).
CALLGRIND = (
    "valgrind",
    "--tool=callgrind",
    "--separate-threads=yes",
    "--instr-atstart=no",
    "--trace-children=yes",
)
# Which thread is which: the daemon's threads are not named for the OS (valgrind
# numbers them in creation order), so each is named by a function only it runs.
ROLES = (
    ("fdatasync", "DB writer"),  # SQLite's commit (WAL, synchronous=FULL)
    ("zmq_msg_recv", "gateway I/O"),  # pyzmq's receive: the gateway's one socket thread
    ("_PyEval_EvalFrameDefault", ""),  # any other Python thread: named below if it writes
    ("epoll_wait", "libzmq I/O"),  # ZeroMQ's own background thread, no Python in it
)
INSTRUCTION_PHASES = ("bench_plain_set", "setting_set", "bench_plain_set", "setting_set")


class ThreadDump(NamedTuple):
    """One thread's part of a callgrind dump: instructions since the last zeroing, what ran, the syncs it made."""

    instructions: int
    functions: frozenset[str]
    syncs: int


NOBODY = ThreadDump(0, frozenset(), 0)  # a thread absent from a dump


class Phase(NamedTuple):
    """The calls of one phase and the dump of every thread's counters after them."""

    method: str
    calls: int
    threads: dict[int, ThreadDump]

    def per_call(self, thread: int | None = None) -> float:
        """Instructions per call, of every thread or of one."""
        if thread is None:
            return sum(t.instructions for t in self.threads.values()) / self.calls
        return self.threads.get(thread, NOBODY).instructions / self.calls

    def syncs(self) -> float:
        """The DB writer's syncs per call: one per commit (group commit: fewer than one a call at 8 clients)."""
        return sum(t.syncs for t in self.threads.values()) / self.calls


def read_dump(path: Path) -> ThreadDump:
    """Parse one ``cg.PID.K-TT`` file: its ``summary:`` line, every function named in it, the calls to fdatasync.

    Names are compressed (``fn=(12) name`` the first time, ``fn=(12)`` after), and each
    dump file names its own (checked: no file refers to a name it does not define).
    """
    names: dict[str, str] = {}
    instructions = syncs = 0
    callee = ""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith(("fn=", "cfn=")):
                ident, _, name = line.partition("=")[2].rstrip("\n").partition(" ")
                if name:
                    names[ident] = name
                callee = names.get(ident, "") if line[0] == "c" else ""
            elif line.startswith("calls=") and callee == "fdatasync":
                syncs += int(line[6:].split()[0])
            elif line.startswith("summary:"):
                instructions = int(line.split()[1])
    return ThreadDump(instructions, frozenset(names.values()), syncs)


def callgrind_control(pid: int, *args: str) -> None:
    """Send one request to the callgrind run of ``pid`` (never another's: there may be others on the machine)."""
    done = subprocess.run(
        ["callgrind_control", *args, str(pid)], capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0 or "OK" not in done.stdout:
        msg = f"callgrind_control {' '.join(args)} {pid}: {done.stdout.strip()} {done.stderr.strip()}"
        raise RuntimeError(msg)


def dump(directory: Path, pid: int) -> dict[int, ThreadDump]:
    """Dump the counters of ``pid``'s every thread; return each thread's figures by valgrind's thread number."""
    before = set(directory.glob(f"cg.{pid}.*"))
    callgrind_control(pid, "--dump")
    made = sorted(set(directory.glob(f"cg.{pid}.*")) - before)
    if not made:
        msg = f"callgrind wrote no dump files for {pid} in {directory}"
        raise RuntimeError(msg)
    return {int(path.name.rpartition("-")[2]): read_dump(path) for path in made}


def role(functions: frozenset[str]) -> str:
    """What a thread is, from the functions it ran (ROLES); a Python thread that writes to a file is a log thread."""
    for function, name in ROLES:
        if function in functions:
            if name:
                return name
            return "log writer" if "_Py_write" in functions else "other"
    return "idle"


@contextmanager
def under_callgrind(config: Path, directory: Path, env: dict[str, str]) -> Iterator[int]:
    """A daemon started as deployed (``start``: daemonised), under callgrind, instrumentation off; its pid.

    Stopped after (``stop``, then SIGKILL to this pid if it is still there after a
    minute: callgrind writes its final dump as the daemon exits).
    """
    daemon = [rpc.PY, "-m", "nua.daemon.cli", "--config", str(config)]
    valgrind = [*CALLGRIND, f"--callgrind-out-file={directory}/cg.%p", f"--log-file={directory}/valgrind.%p.log"]
    subprocess.run([*valgrind, *daemon, "start"], check=True, capture_output=True, env=env, timeout=600)
    process = psutil.Process(int((config.parent / "run" / "nua.pid").read_text(encoding="utf-8").split()[0]))
    try:
        yield process.pid
    finally:
        subprocess.run([*daemon, "stop"], check=False, capture_output=True, env=env, timeout=300)
        try:
            process.wait(60)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(10)
        except psutil.NoSuchProcess:
            pass


def instruction_level(level: str, calls: int) -> tuple[float, Phase, list[Phase]]:
    """One daemon at ``level`` under callgrind: its idle instructions/s, the 1-client phase, the 8-client phases."""
    with tempfile.TemporaryDirectory(prefix=f"nua-bench-audit-cg-{level}-") as tmp_name:
        tmp = Path(tmp_name)
        plugins = rpc.audit_plugin_dir(tmp)
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{plugins}"}
        endpoint = rpc.free_endpoint()
        config = tmp / "nua.toml"
        config.write_text(config_text(tmp, endpoint, level), encoding="utf-8")
        with under_callgrind(config, tmp, env) as pid:
            rpc.wait_answering(endpoint, 600)  # the tree runs only some time after `start` returns
            callgrind_control(pid, "--instr=on")
            for method in INSTRUCTION_PHASES[:2]:  # warm-up, instrumented (switching it on dropped the code made)
                rpc.run_clients(endpoint, method, CLIENTS, calls=max(10, calls // 4))
            callgrind_control(pid, "--zero")
            time.sleep(2.0)
            idle = sum(thread.instructions for thread in dump(tmp, pid).values()) / 2.0

            def phase(method: str, clients: int) -> Phase:
                callgrind_control(pid, "--zero")
                done = rpc.run_clients(endpoint, method, clients, calls=calls)["calls"]
                return Phase(method, int(done), dump(tmp, pid))

            single = phase("bench_plain_set", 1)  # a commit per call: what a commit costs the writer
            phases = [phase(method, CLIENTS) for method in INSTRUCTION_PHASES]
    return idle, single, phases


def instructions(calls: int) -> None:
    """Print, per log level, the daemon's instructions per call with and without the record, split by thread."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("--instructions needs valgrind (callgrind_control with it): apt-get install valgrind")
    print(f"instructions: the daemon under callgrind, all its threads; {CLIENTS} clients x {calls} calls a phase")
    print("  (threads are valgrind's numbers, in creation order, named by a function only that thread runs:")
    print("   fdatasync: DB writer, zmq_msg_recv: gateway I/O, epoll_wait without Python: libzmq's own,")
    print("   another Python thread that writes to a file: a log thread; k = 1000 instructions)")
    for level, said in (("warning", "the record alone"), ("info", "the record and the rpc_call line")):
        started = time.monotonic()
        idle, single, phases = instruction_level(level, calls)
        print(f"\n  log_level {level} ({said}); idle {idle / 1000:.0f}k instructions/s, counted in every phase")
        report_level(single, phases)
        print(f"    ({time.monotonic() - started:.0f} s for this level, load after {os.getloadavg()})")


def report_level(single: Phase, phases: list[Phase]) -> None:
    """Each round's per-call figures (plain, audited), then the extra per call of the threads it is most in.

    The writer's count per call follows its batches (a commit costs it far more than a
    write), and how the calls batch follows the threads' timing under callgrind, which
    differs from run to run: so each round is also shown at equal batching, the audited
    phase's writer charged the plain one's syncs per call, at the cost of a sync that
    the 1-client phase gives (a commit for each call) beside the plain 8-client ones.
    """
    functions: dict[int, set[str]] = {}
    for each in (single, *phases):
        for number, thread in each.threads.items():
            functions.setdefault(number, set()).update(thread.functions)
    roles = {number: role(frozenset(names)) for number, names in functions.items()}
    writer = next((number for number, name in roles.items() if name == "DB writer"), None)
    plains = phases[::2]
    batched = statistics.mean(p.per_call(writer) for p in plains), statistics.mean(p.syncs() for p in plains)
    per_sync = (single.per_call(writer) - batched[0]) / (single.syncs() - batched[1])
    print(
        f"    the DB writer: {per_sync / 1000:.0f}k instructions per sync (1 client: {single.syncs():.2f} syncs/call,"
        f" {single.per_call(writer) / 1000:.0f}k/call in its thread)"
    )
    extras: dict[int, list[float]] = {number: [] for number in functions}
    more_syncs: list[float] = []  # the audited phase's syncs per call over the plain one's, each round
    for round_, (plain, audited) in enumerate(zip(plains, phases[1::2], strict=True), 1):
        before, after = plain.per_call(), audited.per_call()
        even = after - per_sync * (audited.syncs() - plain.syncs())
        print(
            f"    round {round_}: plain {before / 1000:5.1f}k/call, audited {after / 1000:5.1f}k/call:"
            f" audited/plain {after / before:.3f}, extra {(after - before) / 1000:+5.1f}k/call;"
            f" writer syncs/call {plain.syncs():.2f}, {audited.syncs():.2f};"
            f" at equal syncs {even / before:.3f}, {(even - before) / 1000:+5.1f}k/call"
        )
        more_syncs.append(audited.syncs() - plain.syncs())
        for number, extra in extras.items():
            extra.append(audited.per_call(number) - plain.per_call(number))
    top = sorted(extras, key=lambda number: -abs(statistics.mean(extras[number])))
    for number in top[:3]:
        figures = ", ".join(f"{extra / 1000:+.1f}k" for extra in extras[number])
        if number == writer:
            evened = (extra - per_sync * more for extra, more in zip(extras[number], more_syncs, strict=True))
            figures += f" (at equal syncs {', '.join(f'{extra / 1000:+.1f}k' for extra in evened)})"
        print(f"    extra per call in thread {number:2} ({roles[number]}): {figures}")
    rest = (sum(extras[number][r] for number in top[3:]) for r in range(len(plains)))
    print(f"    extra per call in the {len(top[3:])} other threads: {', '.join(f'{x / 1000:+.1f}k' for x in rest)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each end-to-end phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--writes", type=int, default=4000, help="writes per writer-level run")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind instead")
    parser.add_argument("--calls", type=int, default=100, help="calls per client in each --instructions phase")
    opts = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus; load {os.getloadavg()}")
    if opts.instructions:
        instructions(opts.calls)
        print(f"\nload after: {os.getloadavg()}")
        return
    print(f"SQLite WAL synchronous=FULL, {CLIENTS} clients; medians of {opts.rounds} alternating rounds\n")

    print("end to end: real daemons, 8 client processes (durable writes/s, latency ms)")
    rounds = end_to_end(opts)
    e2e = {phase: median_figures(runs) for phase, runs in rounds.items()}
    for (level, method), figures in e2e.items():
        name = f"{'audited ' if method == 'setting_set' else 'plain '}setting_set, log_level {level}"
        print(
            f"  {name:<40} {figures['per_s']:8.0f}/s   p50 {figures['p50_us'] / 1000:.2f}   "
            f"p99 {figures['p99_us'] / 1000:.2f}   daemon CPU {figures['cpu_us']:5.0f} µs/call"
        )
    for level, said in (("info", "record and log line"), ("warning", "record only (info lines off)")):
        plain, audited = e2e[(level, "bench_plain_set")], e2e[(level, "setting_set")]
        per_round = sorted(
            a["per_s"] / p["per_s"]
            for a, p in zip(rounds[(level, "setting_set")], rounds[(level, "bench_plain_set")], strict=True)
        )
        print(
            f"  audited/plain, {said}: throughput {audited['per_s'] / plain['per_s']:.3f} (goal >= 0.90),"
            f" daemon CPU per call {audited['cpu_us'] / plain['cpu_us']:.3f};"
            f" per round {statistics.median(per_round):.3f} median ({', '.join(f'{r:.2f}' for r in per_round)})"
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
