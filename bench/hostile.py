"""Issue 8's attacks, tried again on a real daemon: what a client sees, and what they cost the daemon.

Each example of the issue (a local account with no rights, sending crafted
messages) runs against one daemon on a loopback TCP port, in a temporary
directory. After each, the script checks that the daemon still answers, that no
actor restarted, and reads its RSS; the table it prints is the issue's
"done when": every attack answered, the daemon running, memory back within
50 MB of where it started. The peer figure is the same daemon idle (its RSS and
the latency of a ``test_add`` before the attacks).

    .venv/bin/python bench/hostile.py
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import toml
import zmq

from nua import pidfile
from nua.daemon import control

REPO = Path(__file__).resolve().parents[1]
DAEMON = [sys.executable, "-m", "nua.daemon.cli"]
REPLY_TIMEOUT_MS = 15_000
MIB = 2**20


@dataclass
class Outcome:
    attack: str
    seen: str
    answers: bool = False
    restarts: int = 0
    rss_mib: float = 0.0


class Daemon:
    """One daemon in a temporary directory, ended by its pid."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.pid_file = workdir / "run" / "nua.pid"
        self.db = workdir / "nua.db"
        self.log_file = workdir / "nua.log"
        self.config = workdir / "nua.toml"
        self.config.write_text(
            toml.dumps(
                {
                    "server": {
                        "pid_file": str(self.pid_file),
                        "exit_flag": str(workdir / "run" / "nua.exit"),
                        "log_file": str(self.log_file),
                    },
                    # Raw sockets, as an attacker on the host would use before keys (auth "none" on loopback).
                    "zmq": {
                        "address": "127.0.0.1",
                        "port": self.port,
                        "auth": "none",
                        "keys_dir": str(workdir / "keys"),
                        "client_key": str(workdir / "client" / "client.key_secret"),
                    },
                    "db": {"url": f"sqlite:///{self.db}"},
                    # Cheap hashes: the attacks are about the daemon, not about scrypt's cost.
                    "security": {"scrypt_n": 1024},
                    "debug": {"test_methods": True},
                }
            ),
            encoding="utf-8",
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NUA_")}
        self.env["PYTHONPATH"] = str(REPO)
        self.env.update(dict(item.split("=", 1) for item in os.environ.get("HOSTILE_ENV", "").split() if item))
        self.pid: int | None = None

    def start(self) -> int:
        result = subprocess.run(
            [*DAEMON, "--config", str(self.config), "start"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(result.stdout + result.stderr)
        self.pid = pidfile.read_pid(self.pid_file)
        if self.pid is None:
            raise RuntimeError("no pid file after start")
        return self.pid

    def stop(self) -> None:
        if self.pid is not None and psutil.pid_exists(self.pid):
            os.kill(self.pid, 9)
            control.wait_gone(self.pid, 10)

    def rss_mib(self) -> float:
        if self.pid is None:
            raise RuntimeError("not started")
        return psutil.Process(self.pid).memory_info().rss / MIB

    def alive(self) -> bool:
        return self.pid is not None and psutil.pid_exists(self.pid)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Raw:
    """A DEALER that sends exactly the frames it is given and reads replies as bytes."""

    def __init__(self, context: zmq.Context[Any], address: str, *, rcvhwm: int = 1000) -> None:
        self.sock = context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self.sock.connect(address)

    def send(self, *frames: bytes) -> None:
        self.sock.send_multipart(list(frames))

    def reply(self, timeout_ms: int = REPLY_TIMEOUT_MS) -> Any:
        if not self.sock.poll(timeout_ms):
            return None
        frames = self.sock.recv_multipart()
        return json.loads(frames[-1])

    def call(self, payload: dict[str, Any] | list[Any] | bytes) -> Any:
        self.send(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        return self.reply()

    def close(self) -> None:
        self.sock.close(0)


def request(method: str, params: Any = None, request_id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        message["params"] = params
    return message


def describe(reply: Any) -> str:
    """A reply in a few words: the result, or the error's code and message."""
    if reply is None:
        return "no reply"
    if isinstance(reply, list):
        codes: dict[str, int] = {}
        for member in reply:
            key = str(member["error"]["code"]) if "error" in member else "result"
            codes[key] = codes.get(key, 0) + 1
        return "batch: " + ", ".join(f"{n} x {k}" for k, n in sorted(codes.items()))
    if "error" in reply:
        return f"{reply['error']['code']} {reply['error']['message'][:90]}"
    return f"result {json.dumps(reply['result'])[:60]}"


def restarts(client: Raw) -> int:
    status = client.call(request("sys_status"))
    if status is None or "result" not in status:
        return -1

    def walk(node: dict[str, Any]) -> int:
        return int(node.get("restarts", 0)) + sum(walk(child) for child in node.get("children", []))

    return walk(status["result"]["tree"])


# -- the attacks ------------------------------------------------------------------------------


def surrogates(raw: Raw) -> str:
    escape = "\\ud800"
    texts = [
        f'{{"jsonrpc":"2.0","method":"test_add{escape}","params":[1,2],"id":1}}',
        f'{{"jsonrpc":"2.0","method":"test_add","params":[1,2],"id":"{escape}"}}',
        f'{{"jsonrpc":"2.0","method":"test_add","params":{{"a{escape}":1,"b":2}},"id":1}}',
        f'{{"jsonrpc":"2.0","method":"setting_set","params":["site.x","{escape}"],"id":1}}',
    ]
    # Twelve: twice what ended the daemon before.
    seen = [describe(raw.call(text.encode())) for text in texts * 3]
    listing = describe(raw.call(request("setting_list")))
    return f"{'; '.join(dict.fromkeys(seen))}; then setting_list: {listing[:40]}"


def repeated_key(raw: Raw) -> str:
    raw.call(request("user_add", [{"username": "keep", "email": "keep@example.com", "password": "pw-keep-1234"}]))
    text = b'{"jsonrpc":"2.0","method":"user_count","id":1,"method":"user_delete_all"}'
    seen = describe(raw.call(text))
    left = describe(raw.call(request("user_count")))
    return f"{seen}; users left: {left}"


def idle_connections(raw: Raw, count: int = 1100) -> str:
    host, port = "127.0.0.1", int(raw.sock.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])
    sockets = []
    try:
        for _ in range(count):
            conn = socket.create_connection((host, port), timeout=5)
            sockets.append(conn)
        during = describe(raw.call(request("test_add", [1, 2])))
    finally:
        for conn in sockets:
            conn.close()
    return f"{count} idle TCP connections held; an existing client meanwhile: {during}"


def many_frames(raw: Raw) -> str:
    big = b"x" * MIB
    raw.send(*([big] * 300))
    after_big = raw.reply(2000)
    raw.send(*([b""] * 100_000))
    after_empty = raw.reply(2000)
    follow = describe(raw.call(request("test_add", [1, 2])))
    return (
        f"300 x 1 MB frames: {describe(after_big)}; 100,000 empty frames: {describe(after_empty)}; next call: {follow}"
    )


def one_large_frame(raw: Raw) -> str:
    payload = json.dumps(request("test_add", ["x" * (2 * MIB), 1])).encode()
    return describe(raw.call(payload))


def unread_replies(context: zmq.Context[Any], address: str, raw: Raw) -> str:
    value = "v" * 60_000
    for index in range(300):
        raw.call(request("setting_set", [f"bulk.k{index:03d}", value]))
    sloth = Raw(context, address, rcvhwm=1)
    for _ in range(40):
        sloth.send(json.dumps(request("setting_list", {"limit": 1000})).encode())
    latencies = []
    for _ in range(50):
        began = time.perf_counter()
        raw.call(request("test_add", [1, 2]))
        latencies.append(time.perf_counter() - began)
    one = describe(raw.call(request("setting_list", {"limit": 1000})))
    sloth.close()
    p50 = statistics.median(latencies) * 1000
    return f"setting_list of 300 x 60 kB: {one}; 40 left unread; another client's test_add p50 {p50:.2f} ms"


def flood_batch(raw: Raw, other: Raw, method: str, size: int) -> str:
    def params(index: int) -> list[Any]:
        if method != "user_add":
            return []
        name = f"f{index}"
        return [{"username": name, "email": f"{name}@x.io", "password": "pw-12345678"}]

    batch = [request(method, params(i), i) for i in range(size)]
    raw.send(json.dumps(batch, separators=(",", ":")).encode())
    began = time.perf_counter()
    status = other.call(request("sys_status"))
    status_ms = (time.perf_counter() - began) * 1000
    add = describe(other.call(request("test_add", [1, 2])))
    reply = raw.reply(60_000)
    others = f"sys_status {describe(status)[:20]} in {status_ms:.0f} ms, test_add {add}"
    return f"{describe(reply)}; meanwhile another client: {others}"


def zero_width(raw: Raw) -> str:
    seen = []
    for name in ("ev\u200bil", "adm\u202ein"):
        user = {"username": name, "email": f"{name}@example.com", "password": "pw-12345678"}
        seen.append(describe(raw.call(request("user_add", [user]))))
    return "; ".join(dict.fromkeys(seen))


def database_deleted(daemon: Daemon, raw: Raw) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{daemon.db}{suffix}").unlink(missing_ok=True)
    replies = [raw.call(request("setting_set", [f"gone.k{i}", i])) for i in range(50)]
    acknowledged = sum(1 for reply in replies if reply is not None and "result" in reply)
    status = raw.call(request("sys_status"))
    state = status["result"].get("state", "?") if status and "result" in status else describe(status)
    first = describe(replies[0])
    return f"50 writes after the file was deleted: {acknowledged} acknowledged, first: {first}; status: {state}"


def main() -> int:
    print(f"load: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="nua-hostile-") as tmp:
        daemon = Daemon(Path(tmp))
        pid = daemon.start()
        context = zmq.Context()
        raw = Raw(context, daemon.endpoint)
        other = Raw(context, daemon.endpoint)
        try:
            raw.call(request("test_add", [1, 2]))
            before = daemon.rss_mib()
            print(f"daemon pid {pid}, idle RSS {before:.1f} MiB")
            attacks: list[tuple[str, Callable[[], str]]] = [
                ("lone surrogates in method, id, param name, stored value (x3)", lambda: surrogates(raw)),
                ("repeated key: user_count ... method: user_delete_all", lambda: repeated_key(raw)),
                ("1,100 idle TCP connections", lambda: idle_connections(raw)),
                ("300 frames of 1 MB; 100,000 empty frames", lambda: many_frames(raw)),
                ("one 2 MB frame (over max_message_bytes)", lambda: one_large_frame(raw)),
                ("40 unread large setting_list replies", lambda: unread_replies(context, daemon.endpoint, raw)),
                ("batch of 7,000 user_add", lambda: flood_batch(raw, other, "user_add", 7000)),
                ("batch of 10,000 user_count", lambda: flood_batch(raw, other, "user_count", 10_000)),
                ("zero-width and bidi-override user names", lambda: zero_width(raw)),
                ("the database file deleted under the daemon", lambda: database_deleted(daemon, raw)),
            ]
            outcomes = []
            for name, attack in attacks:
                try:
                    seen = attack()
                except Exception as exc:  # the table must still be printed
                    seen = f"attack failed: {type(exc).__name__}: {exc}"
                outcome = Outcome(name, seen)
                outcome.answers = other.call(request("test_add", [1, 2])) is not None and daemon.alive()
                outcome.restarts = restarts(other)
                outcome.rss_mib = daemon.rss_mib() if daemon.alive() else float("nan")
                outcomes.append(outcome)
                print(
                    f"- {name}\n    client sees: {seen}\n    daemon answers: {outcome.answers}, "
                    f"restarts so far: {outcome.restarts}, RSS {outcome.rss_mib:.1f} MiB "
                    f"({outcome.rss_mib - before:+.1f} vs idle)"
                )
            worst = max(o.rss_mib for o in outcomes) - before
            ok = all(o.answers and o.restarts == 0 for o in outcomes) and worst < 50
            print(f"\nall answered, no restart, RSS within 50 MiB of idle ({worst:+.1f} MiB at worst): {ok}")
            return 0 if ok else 1
        finally:
            raw.close()
            other.close()
            context.term()
            daemon.stop()


if __name__ == "__main__":
    sys.exit(main())
