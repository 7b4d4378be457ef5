"""Services: nua beside supervisord 4 on the same 50 trivial services.

Run: .venv/bin/python bench/services.py [--services 50] [--crashes 100] [--idle-s 10]
Installs supervisord 4 into the running venv the first time (`pip install
'supervisor>=4,<5'`: a benchmark's peer, not a dependency of nua). Each service is
`sh -c 'echo $$ > N.pid; date +%s%N > N.started; exec sleep …'`, so that both
supervisors run the same processes and the time a replacement runs is written by
the replacement itself. Both are driven the same way, one call per service from
one client (nua's JSON-RPC over ipc://, supervisord's XML-RPC over its unix socket),
`startsecs`/`start_s` 0 so that "started" means "running" on both. Prints the time
to start and to stop all (one call per service, each answered once its service is
stopped), crash → replacement running (median, p99), the idle CPU (the scheduler's
nanoseconds, every thread summed) and RSS of each supervisor, and the time from a
SIGTERM to the supervisor, with every service running, until it is gone (its
services stopped first), with the ratios and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import toml
from lifecycle import find_supervisord

from nua.rpc.client import Client

WAIT_S = 60.0


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def script(directory: Path, index: int) -> str:
    return f"echo $$ > {directory}/s{index}.pid; date +%s%N > {directory}/s{index}.started; exec sleep {86400 + index}"


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll a file or process the supervisor under test changes: there is no event to wait on from here."""
    deadline = time.monotonic() + WAIT_S
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.0005)


def written_pid(path: Path) -> int:
    """The pid in ``path``; 0 while it is missing, empty or half-written."""
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def started_ns(directory: Path, index: int) -> int:
    try:
        return int((directory / f"s{index}.started").read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def crash_latencies(directory: Path, services: int, crashes: int) -> list[float]:
    """Kill -9 services in turn; the time from each kill to the replacement's own start stamp (ms)."""
    latencies = []
    for crash in range(crashes):
        index = crash % services
        pid = int((directory / f"s{index}.pid").read_text())
        before = started_ns(directory, index)
        killed = time.time_ns()
        os.kill(pid, signal.SIGKILL)
        stamp = wait_for(lambda i=index, b=before: (s := started_ns(directory, i)) > b and s, f"s{index} replaced")
        latencies.append((stamp - killed) / 1e6)
        time.sleep(0.02)  # let each supervisor settle (supervisord reaps and logs after the start)
    return latencies


def cpu_ns(pid: int) -> int:
    """Nanoseconds process ``pid`` has run, all its threads summed (the scheduler's own count).

    psutil's ``cpu_times`` counts clock ticks of 10 ms: over 10 s idle, 0.1 % is one
    tick, too coarse to tell two idle supervisors apart.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def idle(pid: int, seconds: float) -> tuple[float, float]:
    """CPU % of a core and RSS (MiB) of process ``pid`` over ``seconds`` with nothing to do."""
    process = psutil.Process(pid)
    time.sleep(1.0)
    before = cpu_ns(pid)
    time.sleep(seconds)
    cpu = (cpu_ns(pid) - before) / 1e9 / seconds * 100
    return cpu, process.memory_info().rss / 1048576


def shutdown_s(pid: int, stamps: Path, services: int, start: Callable[[str], Any]) -> float:
    """Start every service again, then SIGTERM the supervisor: the time until it is gone (its services first)."""
    for i in range(services):
        (stamps / f"s{i}.pid").unlink(missing_ok=True)
        start(f"s{i}")
    wait_for(lambda: all_running(stamps, services), "the services, again")
    pidfd = os.pidfd_open(pid)
    try:
        began = time.perf_counter()
        os.kill(pid, signal.SIGTERM)
        select.select([pidfd], [], [], WAIT_S)
        took = time.perf_counter() - began
    finally:
        os.close(pidfd)
    if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        raise SystemExit(f"the supervisor {pid} did not stop within {WAIT_S} s")
    if any(psutil.pid_exists(int((stamps / f"s{i}.pid").read_text())) for i in range(services)):
        raise SystemExit("a service outlived its supervisor")
    return took


def all_running(directory: Path, services: int) -> bool:
    for index in range(services):
        try:
            pid = int((directory / f"s{index}.pid").read_text())
        except (FileNotFoundError, ValueError):
            return False
        if not psutil.pid_exists(pid):
            return False
    return True


# -- nua ----------------------------------------------------------------------------------------


def run_nua(root: Path, services: int, crashes: int, idle_s: float) -> dict[str, float]:
    stamps = root / "stamps"
    stamps.mkdir()
    user = {"user": "root"} if os.geteuid() == 0 else {}
    config = {
        "server": {"pid_file": f"{root}/nua.pid", "exit_flag": f"{root}/nua.exit", "log_file": f"{root}/log/nua.log"},
        # Both supervisors unauthenticated on a private socket; nua's keys stay under root.
        "zmq": {
            "endpoint": f"ipc://{root}/nua.sock",
            "auth": "none",
            "keys_dir": f"{root}/keys",
            "client_key": f"{root}/client/client.key_secret",
        },
        "db": {"url": f"sqlite:///{root}/nua.db"},
        "rpc": {"call_timeout_s": 60.0},
        "services": {
            f"s{i}": {"command": script(stamps, i), "shell": True, "autostart": False, "start_s": 0, **user}
            for i in range(services)
        },
    }
    path = root / "nua.toml"
    path.write_text(toml.dumps(config))
    daemon = [sys.executable, "-m", "nua.daemon.cli", "--config", str(path)]
    subprocess.run([*daemon, "start"], check=True, capture_output=True)
    pid = int((root / "nua.pid").read_text().split()[0])
    try:
        with Client(f"ipc://{root}/nua.sock", timeout=WAIT_S) as client:
            # `start` returns once the daemon is ready, before its actors run: the first
            # call waits for them, which is not the services' time to start.
            client.call("service_list")
            return drive(
                lambda name: client.call("service_start", name),
                lambda name: client.call("service_stop", name),
                pid,
                stamps,
                (services, crashes, idle_s),
            )
    finally:
        subprocess.run([*daemon, "stop"], check=False, capture_output=True)


# -- supervisord ------------------------------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.socket_path)


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.socket_path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:  # noqa: ARG002 - always the socket
        return _UnixConnection(self.socket_path)


def supervisord() -> str:
    """supervisord 4, installed into this venv the first time."""
    found = find_supervisord()
    if found is None:
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "supervisor>=4,<5"]
        subprocess.run(pip, check=True)
        found = find_supervisord()
    if found is None:
        raise SystemExit("supervisord could not be installed: pip install 'supervisor>=4,<5' into .venv")
    return found


def run_supervisord(root: Path, services: int, crashes: int, idle_s: float) -> dict[str, float]:
    stamps = root / "stamps"
    stamps.mkdir()
    sock = root / "sv.sock"
    lines = [
        "[unix_http_server]", f"file={sock}", "",
        "[supervisord]", f"logfile={root}/supervisord.log", f"pidfile={root}/supervisord.pid", "loglevel=warn",
        f"childlogdir={root}", "",
        "[rpcinterface:supervisor]", "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
    ]  # fmt: skip
    for i in range(services):
        command = script(stamps, i).replace("%", "%%")  # supervisord expands %(name)s in its values
        lines += [
            f"[program:s{i}]", f"command=/bin/sh -c '{command}'", "autostart=false", "startsecs=0",
            "autorestart=true", "stopwaitsecs=10", f"stdout_logfile={root}/s{i}.log", "redirect_stderr=true", "",
        ]  # fmt: skip
    conf = root / "supervisord.conf"
    conf.write_text("\n".join(lines))
    subprocess.run([supervisord(), "-c", str(conf)], check=True)
    # Its pid file exists (empty) before the pid is in it: wait for the pid itself.
    pid = wait_for(lambda: sock.exists() and written_pid(root / "supervisord.pid"), "supervisord's pid and socket")
    proxy: Any = xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=_UnixTransport(str(sock)))
    try:
        return drive(
            lambda name: proxy.supervisor.startProcess(name, True),  # noqa: FBT003 - its XML-RPC signature
            lambda name: proxy.supervisor.stopProcess(name, True),  # noqa: FBT003
            pid,
            stamps,
            (services, crashes, idle_s),
        )
    finally:
        with contextlib.suppress(ProcessLookupError):  # gone already: the shutdown was measured
            os.kill(pid, signal.SIGTERM)
            with_pidfd = os.pidfd_open(pid)
            select.select([with_pidfd], [], [], WAIT_S)
            os.close(with_pidfd)


def drive(
    start: Callable[[str], Any], stop: Callable[[str], Any], pid: int, stamps: Path, sizes: tuple[int, int, float]
) -> dict[str, float]:
    """The same measures for either supervisor: ``start``/``stop`` one service by name; ``pid``: the supervisor."""
    services, crashes, idle_s = sizes
    began = time.perf_counter()
    for i in range(services):
        start(f"s{i}")
    wait_for(lambda: all_running(stamps, services), "the services")
    start_s = time.perf_counter() - began
    cpu, rss = idle(pid, idle_s)
    latencies = crash_latencies(stamps, services, crashes)
    began = time.perf_counter()
    for i in range(services):
        stop(f"s{i}")
    stop_s = time.perf_counter() - began
    return {
        "start all (s)": start_s,
        "stop all (s)": stop_s,
        "shutdown, all running (s)": shutdown_s(pid, stamps, services, start),
        "crash→running median (ms)": statistics.median(latencies),
        "crash→running p99 (ms)": percentile(latencies, 0.99),
        "idle CPU (%)": cpu,
        "RSS (MiB)": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--crashes", type=int, default=100)
    parser.add_argument("--idle-s", type=float, default=10.0)
    args = parser.parse_args()
    load = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="nua-bench-") as nua_root,
        tempfile.TemporaryDirectory(prefix="sv-bench-") as sv_root,
    ):
        nua = run_nua(Path(nua_root), args.services, args.crashes, args.idle_s)
        peer = run_supervisord(Path(sv_root), args.services, args.crashes, args.idle_s)
    print(
        f"{args.services} services, {args.crashes} crashes; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"{'':28}{'nua':>10}{'supervisord':>14}{'nua/peer':>10}")
    for key, value in nua.items():
        ratio = value / peer[key] if peer[key] else float("nan")
        print(f"{key:28}{value:10.3f}{peer[key]:14.3f}{ratio:10.2f}")


if __name__ == "__main__":
    main()
