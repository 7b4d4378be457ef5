"""Daemon lifecycle figures: start to ready, stop to gone, and an idle daemon's RSS and CPU.

Measured for nua-orchestrator and, side by side, for supervisord (a process
supervisor daemon in Python with a control socket, a comparable peer) when it is
installed (``pip install supervisor`` into .venv; it is not a dependency of nua).
``--compare DIR`` measures a second nua source tree too (another version, e.g.
``git archive`` of main unpacked in DIR), its runs interleaved with this one's so
that both meet the same load. Every daemon runs in a temporary directory with its
own socket; each is ended by its pid.

Each nua tree's bytecode is compiled first, as ``pip install`` does: the daemon
is measured as installed. Where ``PYTHONDONTWRITEBYTECODE`` is set and nothing
compiled it, every start would compile all of nua again (``--no-compile``
measures that).

    .venv/bin/python bench/lifecycle.py [--runs 5] [--idle-s 10] [--compare DIR] [--no-compile]

Besides the wall time of ``start`` (ready: it returned), each nua run reports
when a first call is answered (``start``, then ``user_count`` from this process:
the daemon serving, its actor tree running) and CPU, which load does not stretch
as it stretches the wall clock: the ``start`` command's own (user + system, its
waited children included) and the daemon's up to its first answer.

Targets (issue 5): an idle daemon under 1% of a core; ``start`` to ready and
``stop`` each under a second. Issue 9: ``start`` to ready under 250 ms median,
idle RSS under 45 MiB.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

from nua import curve_keys, endpoint, pidfile, runtime
from nua.daemon import control
from nua.rpc.client import Client

REPO = Path(__file__).resolve().parents[1]
DAEMON = [sys.executable, "-m", "nua.daemon.cli"]
READY_TIMEOUT_S = 30.0


@dataclass
class Figures:
    name: str
    start_s: list[float]
    sigterm_s: list[float]
    stop_cmd_s: list[float]
    rss_mib: float
    cpu_s: float
    idle_s: float
    # RSS's anonymous part: the process's own memory, not the files (libraries) it maps.
    anon_mib: float = 0.0
    # nua only: from the daemon's "daemon_starting" to its "daemon_serving" log line (its
    # tree running; "daemon_ready" in a nua that was ready only then).
    tree_start_s: list[float] = field(default_factory=list)
    # nua only: start, then a first call answered (the command's wall time included).
    first_call_s: list[float] = field(default_factory=list)
    # nua only: CPU seconds (user + system) of the start command, and of the daemon up to its first answer.
    start_cpu_s: list[float] = field(default_factory=list)
    daemon_cpu_s: list[float] = field(default_factory=list)
    # nua only: the daemon's CPU up to ready, as its "daemon_ready" line says (absent before nua logged it).
    ready_cpu_s: list[float] = field(default_factory=list)

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_s / self.idle_s


def wait_gone(pid: int, timeout: float) -> None:
    """Wait for ``pid`` to exit, as ``nua-orchestrator stop`` does (no polling)."""
    if not control.wait_gone(pid, timeout):
        msg = f"pid {pid} still running after {timeout} s"
        raise TimeoutError(msg)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll an external process's state (no event to wait on from outside)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = f"timed out waiting for {what}"
            raise TimeoutError(msg)
        time.sleep(0.002)


def idle_usage(pid: int, seconds: float) -> tuple[float, float, float]:
    """RSS and its anonymous part (MiB), and CPU seconds (user + system, threads included) of ``pid`` over ``seconds``.

    The anonymous part is the process's own memory (its heap, its objects); the rest
    of RSS is files' pages it maps, libraries' code most of all, shared and clean.
    """
    process = psutil.Process(pid)
    before = process.cpu_times()
    time.sleep(seconds)  # the measurement itself: leave it idle
    after = process.cpu_times()
    cpu = (after.user - before.user) + (after.system - before.system)
    anon_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("RssAnon:"):
            anon_kib = int(line.split()[1])
    return process.memory_info().rss / 2**20, anon_kib / 1024, cpu


def kill_if_alive(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_gone(pid, 10)


# -- nua ---------------------------------------------------------------------------------


class Nua:
    def __init__(self, workdir: Path, source: Path = REPO, name: str = "nua-orchestrator") -> None:
        self.name = name
        self.workdir = workdir
        self.pid_file = workdir / "run" / "nua.pid"
        self.socket = workdir / "run" / "nua.sock"
        self.log_file = workdir / "nua.log"
        self.config = workdir / "nua.toml"
        self.config.write_text(
            "[server]\n"
            f'pid_file = "{self.pid_file}"\n'
            f'exit_flag = "{workdir}/run/nua.exit"\n'
            f'log_file = "{self.log_file}"\n'
            "[zmq]\n"
            f'endpoint = "ipc://{self.socket}"\n'
            # CURVE, the default: its key files stay in the work directory.
            f'keys_dir = "{workdir}/keys"\n'
            f'client_key = "{workdir}/client/client.key_secret"\n'
            "[db]\n"
            f'url = "sqlite:///{workdir}/nua.db"\n'
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NUA_")}
        self.env["PYTHONPATH"] = str(source)

    def first_call(self) -> None:
        """Call ``user_count`` as a client that ``start`` has just returned to (CURVE, the record's key)."""
        # The record as JSON, not through this tree's runtime module: a --compare tree may write another format.
        path = runtime.record_path(self.pid_file)
        record = json.loads(path.read_text()) if path.exists() else {}
        if not record.get("endpoint"):
            msg = "no runtime record after start"
            raise RuntimeError(msg)
        pair = curve_keys.read(self.workdir / "client" / "client.key_secret")
        client_key = (pair.public, pair.secret)
        with Client(record["endpoint"], 30.0, server_key=record.get("server_key"), client_key=client_key) as client:
            client.call("user_count")

    def _cli(self, *args: str) -> None:
        # Run from the work directory: `python -m` puts the current directory first on
        # sys.path, where a nua tree would win over PYTHONPATH's.
        command = [*DAEMON, "--config", str(self.config), *args]
        subprocess.run(command, env=self.env, cwd=self.workdir, check=True, capture_output=True)

    def start(self) -> int:
        """``nua-orchestrator start``: returns once the daemon serves. Its pid."""
        self._cli("start")
        pid = self.pid()
        if pid is None:
            msg = f"start returned, yet {self.pid_file} names no pid"
            raise RuntimeError(msg)
        return pid

    def stop_command(self) -> None:
        self._cli("stop")

    def pid(self) -> int | None:
        return pidfile.read_pid(self.pid_file)

    def ready_cpu_s(self) -> list[float]:
        """Each run's daemon CPU up to ready, from its ``daemon_ready`` line (none from a nua that did not say)."""
        found = []
        for line in self.log_file.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["event"] == "daemon_ready" and isinstance(record.get("cpu_s"), float | int):
                found.append(float(record["cpu_s"]))
        return found

    def tree_start_s(self) -> list[float]:
        """Each run's time from ``daemon_starting`` to ``daemon_serving`` (``daemon_ready`` before it existed)."""
        stamps: dict[int, dict[str, datetime]] = {}
        pid = 0
        for line in self.log_file.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            pid = record.get("pid", pid)  # the daemon's own lines carry it
            if record["event"] in {"daemon_starting", "daemon_ready", "daemon_serving"}:
                stamps.setdefault(pid, {})[record["event"]] = datetime.fromisoformat(record["timestamp"])
        durations = []
        for events in stamps.values():
            serving = events.get("daemon_serving") or events.get("daemon_ready")
            if "daemon_starting" in events and serving is not None:
                durations.append((serving - events["daemon_starting"]).total_seconds())
        return durations


# -- supervisord ---------------------------------------------------------------------------


class Supervisord:
    name = "supervisord"

    def __init__(self, workdir: Path, executable: str) -> None:
        self.executable = executable
        self.pid_file = workdir / "supervisord.pid"
        self.socket = workdir / "supervisor.sock"
        self.config = workdir / "supervisord.conf"
        self.config.write_text(
            "[unix_http_server]\n"
            f"file = {self.socket}\n"
            "chmod = 0700\n"
            "[supervisord]\n"
            f"pidfile = {self.pid_file}\n"
            f"logfile = {workdir}/supervisord.log\n"
            f"childlogdir = {workdir}\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
            "[supervisorctl]\n"
            f"serverurl = unix://{self.socket}\n"
        )

    def start(self) -> int:
        """``supervisord`` daemonises and returns before it serves: ready is its socket accepting."""
        subprocess.run([self.executable, "-c", str(self.config)], check=True, capture_output=True)
        wait_for(lambda: not endpoint.is_free(f"ipc://{self.socket}"), READY_TIMEOUT_S, "supervisord's socket")
        wait_for(lambda: self.pid() is not None, READY_TIMEOUT_S, "supervisord's pid file")
        return self.pid() or 0

    def stop_command(self) -> None:
        """``supervisorctl shutdown`` returns before the daemon is gone: wait for its pid."""
        pid = self.pid()
        ctl = str(Path(self.executable).with_name("supervisorctl"))
        subprocess.run([ctl, "-c", str(self.config), "shutdown"], check=True, capture_output=True)
        if pid is not None:
            wait_gone(pid, READY_TIMEOUT_S)

    def pid(self) -> int | None:
        return pidfile.read_pid(self.pid_file)


# -- measuring -----------------------------------------------------------------------------


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start_stop_cycle(daemon: Nua | Supervisord, figures: Figures) -> None:
    """Start, SIGTERM; start, the stop command: one sample of each into ``figures``.

    For nua, each start is followed at once by a first call, and each stop is of a
    daemon that has answered (as before nua was ready early: then ready was serving).
    """
    began, cpu = time.perf_counter(), children_cpu_s()
    pid = daemon.start()
    figures.start_s.append(time.perf_counter() - began)
    if isinstance(daemon, Nua):
        figures.start_cpu_s.append(children_cpu_s() - cpu)
        daemon.first_call()
        figures.first_call_s.append(time.perf_counter() - began)
        times = psutil.Process(pid).cpu_times()
        figures.daemon_cpu_s.append(times.user + times.system)
    began = time.perf_counter()
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid, READY_TIMEOUT_S)
    figures.sigterm_s.append(time.perf_counter() - began)

    daemon.start()
    if isinstance(daemon, Nua):
        daemon.first_call()
    began = time.perf_counter()
    daemon.stop_command()
    figures.stop_cmd_s.append(time.perf_counter() - began)


def measure(daemons: list[Nua | Supervisord], runs: int, idle_s: float) -> list[Figures]:
    """Each daemon's figures; the daemons take turns, run by run, so that they meet the same load."""
    results = [Figures(daemon.name, [], [], [], 0.0, 0.0, idle_s) for daemon in daemons]
    try:
        for _ in range(runs):
            for daemon, figures in zip(daemons, results, strict=True):
                start_stop_cycle(daemon, figures)
        for daemon, figures in zip(daemons, results, strict=True):
            pid = daemon.start()
            time.sleep(1.0)  # let start-up work (imports, schema check) settle before the idle window
            figures.rss_mib, figures.anon_mib, figures.cpu_s = idle_usage(pid, idle_s)
            daemon.stop_command()
    finally:
        for daemon in daemons:
            kill_if_alive(daemon.pid())
    for daemon, figures in zip(daemons, results, strict=True):
        if isinstance(daemon, Nua):
            figures.tree_start_s = daemon.tree_start_s()
            figures.ready_cpu_s = daemon.ready_cpu_s()
    return results


def median_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


def _median_or_na(values: list[float]) -> str:
    return f"{median_ms(values):.0f}" if values else "n/a"


def report(results: list[Figures]) -> None:
    rows = [
        ("start -> ready (command returns), median ms", lambda f: f"{median_ms(f.start_s):.0f}"),
        ("start -> ready, max ms", lambda f: f"{1000 * max(f.start_s):.0f}"),
        (
            "  of which actor tree start, median ms",
            lambda f: f"{median_ms(f.tree_start_s):.0f}" if f.tree_start_s else "n/a",
        ),
        ("start -> first call answered, median ms", lambda f: _median_or_na(f.first_call_s)),
        ("start command CPU (user+sys), median ms", lambda f: _median_or_na(f.start_cpu_s)),
        ("daemon CPU to ready (its log), median ms", lambda f: _median_or_na(f.ready_cpu_s)),
        ("daemon CPU to first answer, median ms", lambda f: _median_or_na(f.daemon_cpu_s)),
        ("SIGTERM -> process gone, median ms", lambda f: f"{median_ms(f.sigterm_s):.0f}"),
        ("stop command -> process gone, median ms", lambda f: f"{median_ms(f.stop_cmd_s):.0f}"),
        ("idle RSS, MiB", lambda f: f"{f.rss_mib:.1f}"),
        ("  of which anonymous (its own memory), MiB", lambda f: f"{f.anon_mib:.1f}"),
        ("idle CPU seconds", lambda f: f"{f.cpu_s:.3f}"),
        ("idle CPU, % of one core", lambda f: f"{f.cpu_percent:.2f}"),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"{'':<{width}}  " + "  ".join(f"{f.name:>17}" for f in results))
    for label, cell in rows:
        print(f"{label:<{width}}  " + "  ".join(f"{cell(f):>17}" for f in results))
    nua = results[0]
    for other in results[1:]:
        print()
        print(f"ratios {nua.name} / {other.name}:")
        print(f"  start -> ready   {median_ms(nua.start_s) / median_ms(other.start_s):.2f}")
        if nua.first_call_s and other.first_call_s:
            print(f"  first call       {median_ms(nua.first_call_s) / median_ms(other.first_call_s):.2f}")
            print(f"  start cmd CPU    {median_ms(nua.start_cpu_s) / median_ms(other.start_cpu_s):.2f}")
            print(f"  daemon CPU       {median_ms(nua.daemon_cpu_s) / median_ms(other.daemon_cpu_s):.2f}")
        print(f"  SIGTERM -> gone  {median_ms(nua.sigterm_s) / median_ms(other.sigterm_s):.2f}")
        print(f"  stop command     {median_ms(nua.stop_cmd_s) / median_ms(other.stop_cmd_s):.2f}")
        print(f"  idle RSS         {nua.rss_mib / other.rss_mib:.2f}")
        if other.cpu_s > 0:
            print(f"  idle CPU         {nua.cpu_s / other.cpu_s:.2f}")


def find_supervisord() -> str | None:
    beside = Path(sys.executable).with_name("supervisord")
    if beside.exists():
        return str(beside)
    return shutil.which("supervisord")


def compile_bytecode(source: Path) -> None:
    """Compile the tree's nua package, as ``pip install`` does (quietly; an up-to-date file is left alone)."""
    if not compileall.compile_dir(source / "nua", quiet=1):
        msg = f"could not compile {source / 'nua'}"
        raise RuntimeError(msg)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="start/stop cycles per daemon (default 5)")
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle measurement window (default 10 s)")
    parser.add_argument("--compare", type=Path, metavar="DIR", help="another nua source tree, measured side by side")
    parser.add_argument(
        "--no-compile", action="store_true", help="leave the bytecode as it is (see PYTHONDONTWRITEBYTECODE)"
    )
    args = parser.parse_args()
    sources = [REPO] if args.compare is None else [REPO, args.compare.resolve()]
    if not args.no_compile:
        for source in sources:
            compile_bytecode(source)
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other work skews timings)")
    bytecode = "as it was" if args.no_compile else "compiled first"
    dont_write = "set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "unset"
    print(f"nua's bytecode: {bytecode} (PYTHONDONTWRITEBYTECODE {dont_write})")
    print(f"{args.runs} runs each; idle window {args.idle_s:g} s\n")

    with contextlib.ExitStack() as stack:
        daemons: list[Nua | Supervisord] = []
        for index, source in enumerate(sources):
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nua-bench-")))
            daemons.append(Nua(workdir, source, "nua-orchestrator" if index == 0 else f"nua ({source.name})"))
        supervisord = find_supervisord()
        if supervisord is None:
            print("supervisord not installed (pip install supervisor into .venv to compare)\n")
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nua-bench-peer-")))
            daemons.append(Supervisord(workdir, supervisord))
        results = measure(daemons, args.runs, args.idle_s)
    report(results)
    nua = results[0]
    verdicts = {
        "idle < 1% of a core": nua.cpu_percent < 1.0,
        "start -> ready < 1 s (median)": statistics.median(nua.start_s) < 1.0,
        "stop < 1 s (median)": statistics.median(nua.stop_cmd_s) < 1.0,
        "start -> ready < 250 ms (median)": statistics.median(nua.start_s) < 0.25,
        "idle RSS < 45 MiB": nua.rss_mib < 45.0,
    }
    print()
    for target, met in verdicts.items():
        print(f"target {target}: {'met' if met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
