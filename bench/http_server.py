"""JSON-RPC over HTTP beside the ZeroMQ gateway and a minimal stdlib server; the console's cost and reaction.

Run: .venv/bin/python bench/http_server.py [--calls N] [--seconds S] [--rounds R] [--idle-seconds S] [--crashes N]
                                           [--only latency|throughput|idle|crash ...]

One real daemon (``nua-orchestrator start --foreground``, ``[zmq] auth = "none"`` on
loopback tcp, ``[http] port = 0``, one ``sleep`` service) serves both transports,
so they are compared on the same process; the peer is a minimal stdlib
``ThreadingHTTPServer`` answering ``test_add`` (``json.loads``, add, ``json.dumps``;
no auth, no limits), run as a process of its own. Every client is a spawned
process making one call at a time on one connection (HTTP keep-alive, a ZeroMQ
DEALER), the rounds interleaved:

- ``test_add`` latency (p50, p99), one client: nua over HTTP, nua over ZeroMQ, the stdlib peer;
- ``test_add`` throughput with 8 clients, the same three;
- idle daemon CPU and RSS for ``--idle-seconds`` with the console open in headless chromium
  (logged in, following the event stream), beside the same daemon just before with no browser;
- a service's crash (SIGKILL of its process) to the page showing its restart count risen,
  measured by polling the page's cell through WebDriver (a few ms of resolution).

Prints ``uptime`` before and after: figures on a loaded machine mean little alone.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import rpc  # noqa: E402
import rpc_peers  # noqa: E402
from rpc import free_endpoint, process, ratio, spawn_clients, wait_answering  # noqa: E402

from nua import runtime  # noqa: E402

PY = sys.executable
PHASES = ["latency", "throughput", "idle", "crash"]


# -- the stdlib peer --------------------------------------------------------------------------------


class _Peer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as nua's clients use
    # Headers and body leave in two writes: without TCP_NODELAY each reply waits for a delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        a, b = request["params"]
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": a + b}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        return


def peer() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Peer)
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


# -- the load -------------------------------------------------------------------------------------


def http_load(  # noqa: PLR0917 - a multiprocessing target takes positional arguments
    port: int, token: str, client: int, calls: int, duration_s: float, start_at: float, out: Any
) -> None:
    """One HTTP client on one keep-alive connection; puts ``(client, latencies, elapsed)`` on ``out``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    time.sleep(max(0.0, start_at - time.time()))
    began = time.perf_counter()
    stop_at = began + duration_s if duration_s else float("inf")
    i = 0
    while (calls and i < calls) or (not calls and time.perf_counter() < stop_at):
        body = json.dumps({"jsonrpc": "2.0", "method": "test_add", "params": [i, 1], "id": i})
        t0 = time.perf_counter()
        conn.request("POST", "/rpc", body=body, headers=headers)
        reply = json.loads(conn.getresponse().read())
        latencies.append(time.perf_counter() - t0)
        if reply.get("result") != i + 1:
            msg = f"test_add failed: {reply}"
            raise RuntimeError(msg)
        i += 1
    out.put((client, latencies, time.perf_counter() - began))
    conn.close()


# -- the daemon -------------------------------------------------------------------------------


def write_config(tmp: Path, endpoint: str) -> Path:
    """bench/rpc.py's daemon (plaintext ZeroMQ on loopback), with HTTP on any free port and one service."""
    sleeper: dict[str, Any] = {"command": ["sleep", "100000"], "start_s": 0.0, "backoff_s": 0.1}
    if os.geteuid() == 0:
        sleeper["user"] = "root"
    return rpc.write_config(tmp, endpoint, extra={"http": {"port": 0}, "services": {"sleeper": sleeper}})


@contextmanager
def daemon(tmp: Path) -> Iterator[tuple[subprocess.Popen[str], str, str, str]]:
    """The daemon; its process, ZeroMQ endpoint, HTTP URL and an admin's bearer token."""
    endpoint = free_endpoint()
    config = write_config(tmp, endpoint)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [PY, "-m", "nua.daemon.cli", "--config", str(config), "start", "--foreground"]
    with process(args, ready_line=False, env=env) as proc:
        wait_answering(endpoint, 30)
        record = runtime.read(runtime.record_path(tmp / "run" / "nua.pid"))
        deadline = time.monotonic() + 30
        while record is None or record.http is None:
            if time.monotonic() > deadline:
                msg = "the daemon wrote no runtime record with its HTTP URL"
                raise RuntimeError(msg)
            time.sleep(0.1)  # waiting on another process to come up
            record = runtime.read(runtime.record_path(tmp / "run" / "nua.pid"))
        cli = [PY, "-m", "nua.daemon.cli", "--config", str(config), "keys"]
        subprocess.run(
            [*cli, "add", "bench", "--role", "admin", "--output", str(tmp / "b.key")],
            env=env,
            check=True,
            capture_output=True,
        )
        made = subprocess.run([*cli, "token", "bench"], env=env, check=True, capture_output=True, text=True)
        yield proc, endpoint, record.http, made.stdout.split()[-1]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


# -- the console -----------------------------------------------------------------------------


@contextmanager
def console(url: str, token: str) -> Iterator[Any]:
    from selenium import webdriver  # noqa: PLC0415 - only these phases need a browser
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    service = Service("/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get(url + "/")
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "token").is_displayed())
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "login-button").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-service='sleeper']"))
        yield driver
    finally:
        driver.quit()
        if service.process is not None and service.process.poll() is None:
            service.process.kill()


def idle(pid: int, seconds: float) -> tuple[float, float]:
    """The daemon's CPU (% of one core) over ``seconds``, and its RSS (MiB) at the end."""
    import psutil  # noqa: PLC0415

    proc = psutil.Process(pid)
    before = proc.cpu_times()
    time.sleep(seconds)  # the measurement itself: nothing to wait on
    after = proc.cpu_times()
    cpu = (after.user + after.system - before.user - before.system) / seconds * 100
    return cpu, proc.memory_info().rss / 2**20


def restarts_shown(driver: Any) -> int:
    return int(
        driver.execute_script(
            "return document.querySelector(\"tr[data-service='sleeper'] [data-field='restarts']\").textContent;"
        )
    )


def service_pid(endpoint: str) -> int:
    from nua.rpc.client import Client  # noqa: PLC0415

    with Client(endpoint, timeout=10) as client:
        return int(client.call("service_get", "sleeper")["pid"])


def crash_to_page(driver: Any, endpoint: str, crashes: int) -> list[float]:
    times = []
    for _ in range(crashes):
        shown = restarts_shown(driver)
        pid = service_pid(endpoint)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        while restarts_shown(driver) == shown:
            if time.monotonic() - t0 > 60:
                msg = "the page did not show the restart within 60 s"
                raise RuntimeError(msg)
        times.append((time.monotonic() - t0) * 1000)
        time.sleep(1.0)  # let the service settle in RUNNING before the next crash
    return times


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per latency run")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per throughput run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--crashes", type=int, default=5)
    parser.add_argument("--only", nargs="*", choices=PHASES, default=PHASES)
    opts = parser.parse_args()
    print(f"load before: {uptime()}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with (
        tempfile.TemporaryDirectory(prefix="nua-bench-http-") as name,
        daemon(Path(name)) as (proc, endpoint, url, token),
    ):
        port = int(url.rsplit(":", 1)[1])
        lat: dict[str, list[dict[str, float]]] = {"http": [], "zmq": [], "peer": []}
        thr: dict[str, list[dict[str, float]]] = {"http": [], "zmq": [], "peer": []}
        peer_popen = subprocess.Popen([PY, __file__, "peer"], stdout=subprocess.PIPE, text=True, env=env)
        try:
            if peer_popen.stdout is None:
                msg = "the peer has no stdout"
                raise RuntimeError(msg)
            peer_port = int(peer_popen.stdout.readline().split()[1])
            for _ in range(opts.rounds):
                for kind, target, args in (
                    ("http", http_load, (port, token)),
                    ("zmq", rpc_peers.load, (endpoint, "test_add")),
                    ("peer", http_load, (peer_port, "-")),
                ):
                    if "latency" in opts.only:
                        lat[kind].append(spawn_clients(target, args, 1, opts.calls, 0))
                    if "throughput" in opts.only:
                        thr[kind].append(spawn_clients(target, args, 8, 0, opts.seconds))
        finally:
            peer_popen.terminate()
            peer_popen.wait(10)
        report(lat, thr)
        if "idle" in opts.only:
            cpu0, rss0 = idle(proc.pid, opts.idle_seconds)
            with console(url, token):
                cpu1, rss1 = idle(proc.pid, opts.idle_seconds)
            print(
                f"\nidle daemon, {opts.idle_seconds:.0f} s: no browser CPU {cpu0:.2f} % RSS {rss0:.1f} MiB;"
                f" console open CPU {cpu1:.2f} % RSS {rss1:.1f} MiB"
            )
        if "crash" in opts.only:
            with console(url, token) as driver:
                times = crash_to_page(driver, endpoint, opts.crashes)
            print(
                f"\ncrash -> page shows the restart, {len(times)} crashes: median {statistics.median(times):.0f} ms,"
                f" max {max(times):.0f} ms ({', '.join(f'{t:.0f}' for t in times)})"
            )
    print(f"\nload after: {uptime()}")


def report(lat: dict[str, list[dict[str, float]]], thr: dict[str, list[dict[str, float]]]) -> None:
    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    names = {"http": "nua over HTTP", "zmq": "nua over ZeroMQ", "peer": "stdlib ThreadingHTTPServer"}
    if lat["http"]:
        print("\ntest_add latency, 1 client (median of rounds):")
        for kind, label in names.items():
            print(f"  {label:28} p50 {median(lat[kind], 'p50_us'):7.0f} us  p99 {median(lat[kind], 'p99_us'):7.0f} us")
        http_p50 = median(lat["http"], "p50_us")
        print(
            f"  HTTP p50 / ZeroMQ p50 {ratio(http_p50, median(lat['zmq'], 'p50_us'))},"
            f" / stdlib peer {ratio(http_p50, median(lat['peer'], 'p50_us'))}"
        )
    if thr["http"]:
        print("\ntest_add throughput, 8 clients (median of rounds):")
        for kind, label in names.items():
            print(f"  {label:28} {median(thr[kind], 'per_s'):8.0f} calls/s")
        http_s = median(thr["http"], "per_s")
        print(
            f"  HTTP / ZeroMQ {ratio(http_s, median(thr['zmq'], 'per_s'))},"
            f" / stdlib peer {ratio(http_s, median(thr['peer'], 'per_s'))}"
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["peer"]:
        peer()
    else:
        main()
