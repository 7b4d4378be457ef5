"""JSON-RPC through nua's gateway, beside its peers, in one run.

Run: .venv/bin/python bench/rpc.py [--seconds S] [--set-seconds S] [--latency-calls N] [--cli-runs R]
                                   [--rounds R] [--server daemon|tree] [--only PHASE ...]

Every server and every client is a process of its own (clients are spawned
processes with a raw DEALER socket, the same code for every server):

- ``test_add`` latency (p50, p99) with one client, and throughput with 1 and 8
  clients, through nua's gateway (the real daemon, ``nua-orchestrator start
  --foreground``) and through a bare pyzmq ROUTER echo server that only does
  ``json.loads``/``json.dumps`` (bench/rpc_peers.py);
- ``setting_set`` throughput with 8 clients through nua (DB writer, group commit)
  and through a plain tinyrpc ``RPCServer`` committing an ORM Session per call,
  both on SQLite with WAL and ``synchronous=FULL``; and, on the same daemon, the
  same command without its audit record (``bench_plain_set``, bench/audit_bench_plugin.py):
  what the record costs (``--server daemon``; bench/audit.py measures it at length);
- ``nua user count`` whole-process wall time (bin/nua, endpoint given and found
  from the settings) next to a minimal script making the same call with
  tinyrpc's ``RPCClient`` and ``ZmqClientTransport`` (nua byte-compiled first,
  as installed packages are: ``__pycache__`` is git-ignored).

nua runs twice, side by side: with ``[zmq] auth = "none"`` (plaintext, the peer
the stock clients can talk to) and with ``auth = "curve"`` (the default: every
client authenticated and encrypted; the clients use the daemon's own admin key),
so that ``test_add`` latency and throughput and the CLI's wall time are shown
for both in the same run.

Targets (issue 4): p50 within 1.5x of echo, 8-client throughput >= 0.6x echo,
setting_set >= 3x tinyrpc, CLI <= 1.2x the tinyrpc script. Issue 10: CURVE p50
<= 1.3x plaintext; the audit record costs at most 10 % of setting_set's throughput.

``--only set`` (or ``latency``, ``throughput``, ``cli``) runs just those phases,
measured exactly as in a full run: for quick comparisons while tuning one path.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import toml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import rpc_peers  # noqa: E402

from nua import curve_keys, runtime  # noqa: E402
from nua.rpc.client import Client, DaemonUnreachableError  # noqa: E402
from nua.rpc.errors import RpcError  # noqa: E402

PY = sys.executable
PHASES = ["latency", "throughput", "set", "cli"]
TINYRPC_SCRIPT = """\
import sys, zmq
from tinyrpc.client import RPCClient
from tinyrpc.protocols.jsonrpc import JSONRPCProtocol
from tinyrpc.transports.zmq import ZmqClientTransport
client = RPCClient(JSONRPCProtocol(), ZmqClientTransport.create(zmq.Context(), sys.argv[1]))
print(client.call("user_count", [], {}))
"""


def free_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


@contextmanager
def process(args: list[str], *, ready_line: bool, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """A server process, ended by its pid on the way out."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE if ready_line else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        if ready_line:
            line = proc.stdout.readline() if proc.stdout is not None else ""

            if line.strip() != "ready":
                msg = f"{args[:3]} did not start: {line!r}"
                raise RuntimeError(msg)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# A CURVE peer: the server's public key, the client's public and secret keys.
Curve = tuple[str, str, str] | None


def wait_answering(endpoint: str, timeout_s: float, curve: Curve = None) -> None:
    deadline = time.monotonic() + timeout_s
    server_key, client_key = (None, None) if curve is None else (curve[0], (curve[1], curve[2]))
    while time.monotonic() < deadline:
        try:
            with Client(endpoint, timeout=1.0, server_key=server_key, client_key=client_key) as client:
                client.call("test_add", 1, 2)
                return
        except (DaemonUnreachableError, RpcError):
            time.sleep(0.1)  # waiting on another process to come up
    msg = f"nothing answers test_add on {endpoint}"
    raise RuntimeError(msg)


def run_clients(
    endpoint: str, method: str, clients: int, *, calls: int = 0, seconds: float = 0, curve: Curve = None
) -> dict[str, float]:
    """Run ``clients`` load processes at once (over CURVE with ``curve``); return latency percentiles and calls/s."""
    return spawn_clients(rpc_peers.load, (endpoint, method), clients, calls, seconds, (curve,))


def spawn_clients(  # noqa: PLR0917 - the load processes' arguments, in order
    target: Any, args: tuple[Any, ...], clients: int, calls: int, seconds: float, extra: tuple[Any, ...] = ()
) -> dict[str, float]:
    """Run ``clients`` processes of ``target(*args, n, calls, seconds, start_at, out, *extra)`` at once.

    Each puts ``(n, latencies, elapsed)`` on ``out``; returns latency percentiles and calls/s over all.
    """
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 0.5 + 0.1 * clients  # spawning takes a moment; start together
    procs = [ctx.Process(target=target, args=(*args, n, calls, seconds, start_at, out, *extra)) for n in range(clients)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(10)
    latencies = sorted(lat for _, lats, _ in results for lat in lats)
    total = len(latencies)
    elapsed = max(elapsed for _, _, elapsed in results)
    return {
        "p50_us": latencies[total // 2] * 1e6,
        "p99_us": latencies[min(total - 1, int(total * 0.99))] * 1e6,
        "per_s": total / elapsed,
        "calls": total,
    }


def wall_time(args: list[str], env: dict[str, str]) -> float:
    """Wall time of one whole process, in ms; it must exit 0."""
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        msg = f"{args} failed ({done.returncode}): {done.stderr.strip()}"
        raise RuntimeError(msg)
    return elapsed * 1000


def write_config(tmp: Path, endpoint: str, auth: str = "none", extra: dict[str, dict[str, Any]] | None = None) -> Path:
    """The benchmarks' daemon settings under ``tmp``; ``extra``'s keys join their sections (TOML declares each once)."""
    sections: dict[str, dict[str, Any]] = {
        "server": {
            "pid_file": f"{tmp}/run/nua.pid",
            "exit_flag": f"{tmp}/run/nua.exit",
            "log_file": f"{tmp}/nua.log",
            "log_level": "warning",
        },
        "zmq": {
            "endpoint": endpoint,
            "auth": auth,
            "keys_dir": f"{tmp}/keys",
            "client_key": f"{tmp}/client/client.key_secret",
        },
        "db": {"url": f"sqlite:///{tmp}/nua.db", "sqlite_synchronous": "FULL"},
        "debug": {"test_methods": True},
    }
    for section, keys in (extra or {}).items():
        sections[section] = {**sections.get(section, {}), **keys}
    config = tmp / "nua.toml"
    config.write_text(toml.dumps(sections), encoding="utf-8")
    return config


def audit_plugin_dir(tmp: Path) -> Path:
    """A directory under ``tmp`` holding bench/audit_bench_plugin.py alone, for a daemon's path.

    Not bench/ itself: it holds modules named as the standard library's (http.py).
    """
    plugins = tmp / "plugins"
    plugins.mkdir()
    shutil.copy(HERE / "audit_bench_plugin.py", plugins)
    return plugins


@contextmanager
def nua_server(kind: str, tmp: Path, endpoint: str, config: Path, plugins: Path | None = None) -> Iterator[None]:
    """nua serving ``endpoint``: the daemon (with ``plugins`` on its path), or the bare actor tree."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) if plugins is None else f"{ROOT}{os.pathsep}{plugins}"}
    if kind == "daemon":
        args = [PY, "-m", "nua.daemon.cli", "--config", str(config), "start", "--foreground"]
        with process(args, ready_line=False, env=env):
            wait_answering(endpoint, 30)
            yield
    else:
        args = [PY, str(HERE / "rpc_peers.py"), "tree", endpoint, f"sqlite:///{tmp}/nua.db"]
        with process(args, ready_line=True, env=env):
            wait_answering(endpoint, 30)
            yield


@contextmanager
def curve_daemon(tmp: Path, endpoint: str) -> Iterator[tuple[Path, Curve]]:
    """A second nua daemon, with CURVE (the default); its config and the keys its clients use (its admin's)."""
    home = tmp / "curve"
    home.mkdir(mode=0o700)
    config = write_config(home, endpoint, auth="curve")
    args = [PY, "-m", "nua.daemon.cli", "--config", str(config), "start", "--foreground"]
    with process(args, ready_line=False, env={**os.environ, "PYTHONPATH": str(ROOT)}):
        deadline = time.monotonic() + 30
        record = None
        while record is None or record.server_key is None:
            if time.monotonic() > deadline:
                msg = "the CURVE daemon wrote no runtime record with its key"
                raise RuntimeError(msg)
            time.sleep(0.1)  # waiting on another process to come up
            record = runtime.read(runtime.record_path(home / "run" / "nua.pid"))
        client = curve_keys.read(home / "client" / "client.key_secret")
        curve = (record.server_key, client.public, client.secret)
        wait_answering(endpoint, 30, curve)
        yield config, curve


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def set_rounds(opts: argparse.Namespace, tiny_ep: str, nua_ep: str) -> dict[str, list[dict[str, float]]]:
    """``setting_set`` at 8 clients through tinyrpc and nua, and nua's without its audit record (the daemon's)."""
    setters = [("tinyrpc set 8", tiny_ep, "setting_set"), ("nua set 8", nua_ep, "setting_set")]
    if opts.server == "daemon":
        setters.append(("nua unaudited set 8", nua_ep, "bench_plain_set"))
    rounds: dict[str, list[dict[str, float]]] = {}
    for round_number in range(opts.rounds):
        # The audited and unaudited phases back to back, in alternating order.
        for name, endpoint, method in setters if round_number % 2 == 0 else setters[::-1]:
            rounds.setdefault(name, []).append(run_clients(endpoint, method, 8, seconds=opts.set_seconds / opts.rounds))
    return rounds


def measure(opts: argparse.Namespace) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Run every phase; return the median figures per phase and the CLI wall times."""
    with tempfile.TemporaryDirectory(prefix="nua-bench-rpc-") as tmp_name, ExitStack() as servers:
        tmp = Path(tmp_name)
        nua_ep, echo_ep, tiny_ep, curve_ep = free_endpoint(), free_endpoint(), free_endpoint(), free_endpoint()
        # The daemon also serves setting_set without its audit record: the record's peer.
        plugins = audit_plugin_dir(tmp)
        config = write_config(tmp, nua_ep, extra={"rpc": {"plugins": ["audit_bench_plugin"]}})
        # All servers run for the whole benchmark and the phases alternate between
        # them, so that a slow moment of this 2-core machine hits both sides alike.
        servers.enter_context(process([PY, str(HERE / "rpc_peers.py"), "echo", echo_ep], ready_line=True))
        tiny_db = f"sqlite:///{tmp}/tinyrpc.db"
        servers.enter_context(
            process([PY, str(HERE / "rpc_peers.py"), "tinyrpc", tiny_ep, tiny_db, "FULL"], ready_line=True)
        )
        servers.enter_context(nua_server(opts.server, tmp, nua_ep, config, plugins))
        curve_config, curve = servers.enter_context(curve_daemon(tmp, curve_ep))
        peers: dict[str, tuple[str, Curve]] = {
            "echo": (echo_ep, None),
            "nua": (nua_ep, None),
            "curve": (curve_ep, curve),
        }
        for endpoint, keys in peers.values():
            run_clients(endpoint, "test_add", 1, calls=300, curve=keys)  # warm-up
        rounds: dict[str, list[dict[str, float]]] = {}
        for _ in range(opts.rounds if "latency" in opts.only else 0):
            for name, (endpoint, keys) in peers.items():
                rounds.setdefault(f"{name} lat", []).append(
                    run_clients(endpoint, "test_add", 1, calls=opts.latency_calls // opts.rounds, curve=keys)
                )
        for _ in range(opts.rounds if "throughput" in opts.only else 0):
            for name, (endpoint, keys) in peers.items():
                for clients in (1, 8):
                    rounds.setdefault(f"{name} {clients}", []).append(
                        run_clients(endpoint, "test_add", clients, seconds=opts.seconds / opts.rounds, curve=keys)
                    )
        if "set" in opts.only:
            rounds |= set_rounds(opts, tiny_ep, nua_ep)
        figures = {
            name: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for name, runs in rounds.items()
        }

        env = {k: v for k, v in os.environ.items() if not k.startswith("NUA_")}
        # Byte-compile nua as an install (or any first run) would: with
        # PYTHONDONTWRITEBYTECODE set, as in some sandboxes, every CLI run would
        # otherwise recompile its modules while tinyrpc's come compiled from pip.
        subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "nua")], check=True, capture_output=True)
        script = tmp / "tinyrpc_user_count.py"
        script.write_text(TINYRPC_SCRIPT, encoding="utf-8")
        nua_cli = str(ROOT / "bin" / "nua")
        # Interleaved run by run, so that a slow moment of the machine hits all three.
        cli_tiny, cli_ep, cli_cfg, cli_curve = [], [], [], []
        for _ in range(opts.cli_runs if "cli" in opts.only else 0):
            cli_tiny.append(wall_time([PY, str(script), nua_ep], env))
            cli_ep.append(wall_time([nua_cli, "user", "count", "--endpoint", nua_ep], env))
            cli_cfg.append(wall_time([nua_cli, "user", "count"], {**env, "NUA_CONFIG": str(config)}))
            cli_curve.append(wall_time([nua_cli, "user", "count"], {**env, "NUA_CONFIG": str(curve_config)}))

    return figures, {"tiny": cli_tiny, "ep": cli_ep, "cfg": cli_cfg, "curve": cli_curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each test_add throughput phase")
    parser.add_argument("--set-seconds", type=float, default=6.0, help="length of each setting_set phase")
    parser.add_argument("--latency-calls", type=int, default=3000)
    parser.add_argument("--cli-runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--server", choices=["daemon", "tree"], default="daemon")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PHASES,
        default=PHASES,
        metavar="PHASE",
        help=f"phases to run ({', '.join(PHASES)})",
    )
    opts = parser.parse_args()
    machine = f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus"
    print(f"{machine}; nua server: {opts.server}")

    figures, cli = measure(opts)
    print(f"\nfigures are medians over {opts.rounds} alternating rounds")
    if "latency" in opts.only:
        report_latency(figures)
    if "throughput" in opts.only:
        report_throughput(figures)
    if "set" in opts.only:
        report_setting_set(figures)
    if "cli" in opts.only:
        report_cli(cli, opts.cli_runs)


def report_latency(figures: dict[str, dict[str, float]]) -> None:
    print("\ntest_add latency, 1 client (microseconds)")
    for name in ("echo lat", "nua lat", "curve lat"):
        print(f"  {name[:-4]:<8} p50 {figures[name]['p50_us']:8.1f}   p99 {figures[name]['p99_us']:8.1f}")
    p50 = ratio(figures["nua lat"]["p50_us"], figures["echo lat"]["p50_us"])
    p99 = ratio(figures["nua lat"]["p99_us"], figures["echo lat"]["p99_us"])
    print(f"  nua/echo p50 {p50}   p99 {p99}   (target p50 <= 1.5x; nua with auth = none)")
    p50 = ratio(figures["curve lat"]["p50_us"], figures["nua lat"]["p50_us"])
    p99 = ratio(figures["curve lat"]["p99_us"], figures["nua lat"]["p99_us"])
    print(f"  curve/plaintext p50 {p50}   p99 {p99}   (target p50 <= 1.3x)")


def report_throughput(figures: dict[str, dict[str, float]]) -> None:
    print("\ntest_add throughput (calls/s)")
    for clients in ("1", "8"):
        nua, echo = figures[f"nua {clients}"]["per_s"], figures[f"echo {clients}"]["per_s"]
        curve = figures[f"curve {clients}"]["per_s"]
        target = "   (target >= 0.6x)" if clients == "8" else ""
        print(f"  {clients} client(s): echo {echo:9.0f}   nua {nua:9.0f}   nua/echo {ratio(nua, echo)}{target}")
        print(f"  {' ' * len(clients)}            curve {curve:9.0f}   curve/plaintext {ratio(curve, nua)}")


def report_setting_set(figures: dict[str, dict[str, float]]) -> None:
    nua_set, tiny_set = figures["nua set 8"]["per_s"], figures["tinyrpc set 8"]["per_s"]
    print("\nsetting_set throughput, 8 clients, SQLite WAL synchronous=FULL (durable writes/s)")
    print(f"  tinyrpc {tiny_set:8.0f}   nua {nua_set:8.0f}   nua/tinyrpc {ratio(nua_set, tiny_set)}   (target >= 3x)")
    print(f"  latency p50/p99 (ms): tinyrpc {figures['tinyrpc set 8']['p50_us'] / 1000:.2f}/"
          f"{figures['tinyrpc set 8']['p99_us'] / 1000:.2f}   nua {figures['nua set 8']['p50_us'] / 1000:.2f}/"
          f"{figures['nua set 8']['p99_us'] / 1000:.2f}")  # fmt: skip
    if "nua unaudited set 8" in figures:
        plain = figures["nua unaudited set 8"]["per_s"]
        print(
            f"  nua without the audit record {plain:8.0f}   audited/unaudited {nua_set / plain:.3f}"
            "   (issue 10: >= 0.90, the record costs at most 10 %)"
        )


def report_cli(cli: dict[str, list[float]], runs: int) -> None:
    tiny_ms, ep_ms, cfg_ms, curve_ms = (statistics.median(cli[key]) for key in ("tiny", "ep", "cfg", "curve"))
    print(f"\n`user count` whole-process wall time, median of {runs} interleaved runs (ms)")
    print(f"  tinyrpc script           {tiny_ms:6.1f}")
    print(f"  nua user count --endpoint {ep_ms:6.1f}   {ratio(ep_ms, tiny_ms)} (target <= 1.2x)")
    print(f"  nua user count (settings) {cfg_ms:6.1f}   {ratio(cfg_ms, tiny_ms)}")
    versus = f"{ratio(curve_ms, tiny_ms)} ({ratio(curve_ms, cfg_ms)} of plaintext)"
    print(f"  the same, CURVE daemon    {curve_ms:6.1f}   {versus}")


if __name__ == "__main__":
    main()
