"""Reads beside writes: ``setting_set`` latency while another client pages through 1,000,000 users.

Run: .venv/bin/python bench/reads.py [--users N] [--calls N] [--rounds R] [--limits L ...]

The database is built directly (one transaction, ``executemany``: about 5 s for a
million users), then the real daemon is started on it (``nua-orchestrator start
--foreground``, as bench/rpc.py does). Each round measures, one after the other:

- idle: one client calling ``setting_set`` in a loop, alone (the peer);
- loaded: the same client while another one pages through every user with
  ``user_list(limit=L, after=next)``, from the first page to the last, over and
  over, for each page size ``L`` asked for (the default page and the largest).

It prints the ``setting_set`` p50 and p99 of both, their ratio (the goal: loaded
p99 within 2x of idle p99), the pager's pages/s, users/s and per-page latency
beside them, and the latency of ``user_count`` (one read of the whole table).

Two designs are measured, two daemons side by side on copies of the database, in
alternating rounds: nua as it is (reads on the ``db_reader`` actor) and, as the
peer, the same daemon with every read sent to the DB writer (``--designs``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zmq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import rpc  # noqa: E402 - bench/rpc.py: its server start, endpoint and config helpers

import nua.settings  # noqa: E402
from nua.model import engine as db_engine  # noqa: E402
from nua.model.schema import ensure_schema  # noqa: E402
from nua.model.setting import initial_settings  # noqa: E402

PY = sys.executable
# A real scrypt hash's shape and length: rows of the size the daemon stores.
FAKE_HASH = "scrypt$16384$8$1$" + "s" * 22 + "$" + "k" * 43


def build(db_path: Path, users: int) -> float:
    """Create the schema and ``users`` users in one transaction; return the seconds it took."""
    settings = nua.settings.load(environ={"NUA_DB_URL": f"sqlite:///{db_path}", "XDG_RUNTIME_DIR": str(db_path.parent)})
    engine = db_engine.create(settings.db)
    began = time.perf_counter()
    try:
        with engine.begin() as conn:
            ensure_schema(conn, initial_settings(settings))
            stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite form
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.executemany(
                "INSERT INTO users (id, username, email, password_hash, role, display_name, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'user', ?, ?, ?)",
                (
                    (i, f"user{i:07}", f"user{i:07}@example.org", FAKE_HASH, f"User {i}", stamp, stamp)
                    for i in range(1, users + 1)
                ),
            )
    finally:
        engine.dispose()
    return time.perf_counter() - began


def pager(endpoint: str, limit: int, started: Any, stop: Any, out: Any) -> None:
    """Page through every user, again and again, until ``stop`` is set; report pages and their latency."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    latencies: list[float] = []
    users = sweeps = 0
    after: int | None = None
    began = time.perf_counter()
    started.set()
    while not stop.is_set():
        params: dict[str, Any] = {"limit": limit} if after is None else {"limit": limit, "after": after}
        payload = json.dumps({"jsonrpc": "2.0", "method": "user_list", "params": params, "id": len(latencies)})
        t0 = time.perf_counter()
        sock.send(payload.encode())
        reply = json.loads(sock.recv())
        latencies.append(time.perf_counter() - t0)
        if "result" not in reply:
            msg = f"user_list failed: {reply}"
            raise RuntimeError(msg)
        users += len(reply["result"]["items"])
        after = reply["result"]["next"]
        if after is None:
            sweeps += 1
    out.put((latencies, users, sweeps, time.perf_counter() - began))
    sock.close()


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


def setting_set(endpoint: str, calls: int) -> dict[str, float]:
    """``calls`` setting_set, one at a time, from a process of their own (bench/rpc.py's load)."""
    return rpc.run_clients(endpoint, "setting_set", 1, calls=calls)


def loaded(endpoint: str, calls: int, limit: int) -> tuple[dict[str, float], dict[str, float]]:
    """setting_set figures while a pager runs, and the pager's own."""
    ctx = multiprocessing.get_context("spawn")
    started, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=pager, args=(endpoint, limit, started, stop, out))
    proc.start()
    try:
        if not started.wait(30):
            msg = "the pager did not start"
            raise RuntimeError(msg)
        time.sleep(0.3)  # let the pager reach its stride before measuring beside it
        writes = setting_set(endpoint, calls)
        stop.set()
        latencies, users, sweeps, elapsed = out.get(timeout=60)
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    page = percentiles(latencies)
    return writes, {
        **page,
        "pages_per_s": len(latencies) / elapsed,
        "users_per_s": users / elapsed,
        "sweeps": sweeps,
    }


def user_count_ms(endpoint: str, calls: int) -> dict[str, float]:
    return percentiles(_timed_calls(endpoint, "user_count", calls))


def _timed_calls(endpoint: str, method: str, calls: int) -> list[float]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    latencies = []
    for i in range(calls):
        t0 = time.perf_counter()
        sock.send(json.dumps({"jsonrpc": "2.0", "method": method, "params": [], "id": i}).encode())
        reply = json.loads(sock.recv())
        latencies.append(time.perf_counter() - t0)
        if "result" not in reply:
            msg = f"{method} failed: {reply}"
            raise RuntimeError(msg)
    sock.close()
    return latencies


# The daemon with the read methods pointed at the DB writer: the simpler design, as a peer.
READS_IN_WRITER = """
import sys
from nua.actors.directory import DB_WRITER
from nua.rpc.methods import group, setting, user
for module in (group, setting, user):
    module.DB_READER = DB_WRITER
from nua.daemon.cli import main
sys.exit(main())
"""


@contextmanager
def daemon(design: str, tmp: Path, endpoint: str, config: Path) -> Iterator[None]:
    """The real daemon in the foreground, as bench/rpc.py starts it; ``writer``: reads sent to the writer."""
    if design == "reader":
        with rpc.nua_server("daemon", tmp, endpoint, config):
            yield
        return
    args = [PY, "-c", READS_IN_WRITER, "--config", str(config), "start", "--foreground"]
    with rpc.process(args, ready_line=False, env={**os.environ, "PYTHONPATH": str(ROOT)}):
        rpc.wait_answering(endpoint, 30)
        yield


def measure(tmp: Path, opts: argparse.Namespace, limits: list[int]) -> dict[str, dict[str, Any]]:
    """Both designs at once, each a daemon on its own copy of the database, in alternating rounds.

    Running side by side, a slow moment of this shared machine hits both alike.
    """
    results: dict[str, dict[str, Any]] = {}
    with ExitStack() as daemons:
        endpoints = {}
        for design in opts.designs:
            home = tmp / design
            home.mkdir()
            shutil.copyfile(tmp / "nua.db", home / "nua.db")
            endpoint = rpc.free_endpoint()
            daemons.enter_context(daemon(design, home, endpoint, rpc.write_config(home, endpoint)))
            setting_set(endpoint, 300)  # warm-up
            endpoints[design] = endpoint
            results[design] = {"idle": [], "busy": {limit: [] for limit in limits}}
        for _ in range(opts.rounds):
            for design, endpoint in endpoints.items():
                results[design]["idle"].append(setting_set(endpoint, opts.calls))
                for limit in limits:
                    results[design]["busy"][limit].append(loaded(endpoint, opts.calls, limit))
        for design, endpoint in endpoints.items():
            results[design]["counts"] = user_count_ms(endpoint, 20)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=1500, help="setting_set calls per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--limits", type=int, nargs="+", default=None, help="page sizes (default: page_size, max)")
    parser.add_argument("--designs", nargs="+", choices=["reader", "writer"], default=["reader", "writer"])
    opts = parser.parse_args()
    defaults = nua.settings.load(environ={}).rpc
    limits = opts.limits or [defaults.page_size, defaults.max_page_size]
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus; load {os.getloadavg()}")

    with tempfile.TemporaryDirectory(prefix="nua-bench-reads-") as tmp_name:
        tmp = Path(tmp_name)
        seconds = build(tmp / "nua.db", opts.users)
        print(f"built {opts.users} users in {seconds:.1f} s (one transaction)")
        results = measure(tmp, opts, limits)
    print(f"load after the runs: {os.getloadavg()}")
    for design, figures in results.items():
        title = "reads on the db_reader actor (nua)" if design == "reader" else "reads in the DB writer (peer)"
        print(f"\n== {title}")
        report(figures["idle"], figures["busy"], figures["counts"], opts)


def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def report(
    idle: list[dict[str, float]],
    busy: dict[int, list[tuple[dict[str, float], dict[str, float]]]],
    counts: dict[str, float],
    opts: argparse.Namespace,
) -> None:
    idle_p50, idle_p99 = median_of(idle, "p50_us") / 1000, median_of(idle, "p99_us") / 1000
    print(f"\nsetting_set latency (ms), medians over {opts.rounds} alternating rounds of {opts.calls} calls")
    print(f"  idle (peer)                  p50 {idle_p50:7.2f}   p99 {idle_p99:7.2f}")
    for limit, runs in busy.items():
        writes = [w for w, _ in runs]
        pages = [p for _, p in runs]
        p50, p99 = median_of(writes, "p50_us") / 1000, median_of(writes, "p99_us") / 1000
        print(
            f"  paging limit={limit:<5}           p50 {p50:7.2f}   p99 {p99:7.2f}   "
            f"p99 loaded/idle {p99 / idle_p99:.2f}x (goal <= 2x)"
        )
        rate, users = median_of(pages, "pages_per_s"), median_of(pages, "users_per_s")
        print(
            f"    the pager: {rate:7.0f} pages/s  {users:9.0f} users/s"
            f"  page p50 {median_of(pages, 'p50_ms'):6.2f} ms  p99 {median_of(pages, 'p99_ms'):6.2f} ms"
        )
    print(f"\nuser_count at {opts.users} users: p50 {counts['p50_ms']:.2f} ms  p99 {counts['p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
