"""The HTTP server of the real daemon, as a new user meets it: ``[http] port``, ``keys token``, a call."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from daemon_helpers import DaemonEnv

from nua.rpc.client import Client


def _call(url: str, token: str, payload: dict[str, Any]) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        conn.request("POST", "/rpc", body=json.dumps(payload), headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def test_a_token_from_keys_token_calls_over_http(daemon: DaemonEnv) -> None:
    daemon.write_config(http={"port": 0})
    daemon.start()
    record = json.loads((daemon.run_dir / "nua.runtime.json").read_text(encoding="utf-8"))
    url = record["http"]
    assert url.startswith("http://127.0.0.1:")
    assert f"console:     {url}" in daemon.cli("status").stdout
    added = daemon.cli("keys", "add", "olga", "--role", "operator", "--output", str(daemon.root / "olga.key_secret"))
    assert added.returncode == 0, added.stderr
    made = daemon.cli("keys", "token", "olga", "--ttl", "2h")
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[-1]
    assert token.startswith("nua_")
    assert "operator" in made.stdout
    status, reply = _call(url, token, {"jsonrpc": "2.0", "id": 1, "method": "sys_status"})
    assert status == 200
    assert reply["result"]["tree"]["id"] == "root"
    assert [child["id"] for child in reply["result"]["tree"]["children"]][-1] == "http"
    # The audit record of key_token keeps no hash of the secret.
    with Client(daemon.endpoint, timeout=10) as client:
        params = client.call("audit_list", None, None, "key_token")["items"][0]["params"]
    assert params["name"] == "olga"
    assert params["token_hash"] == "***"  # noqa: S105 - the redaction marker
    assert token.rsplit("_", 1)[-1] not in daemon.log_file.read_text(encoding="utf-8")


def test_keys_token_says_what_is_wrong(daemon: DaemonEnv) -> None:
    daemon.write_config(http={"port": 0})
    daemon.start()
    unknown = daemon.cli("keys", "token", "nobody")
    assert unknown.returncode == 1
    assert "nobody" in unknown.stderr
    for ttl in ("0s", "soon", "5y"):
        bad = daemon.cli("keys", "token", "nobody", "--ttl", ttl)
        assert bad.returncode == 2, ttl
        assert "--ttl" in bad.stderr


def test_a_port_in_use_fails_the_start_saying_so(daemon: DaemonEnv) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon.write_config(http={"port": port})
        result = daemon.cli("start")
    assert result.returncode == 1
    assert f"cannot bind the HTTP address 127.0.0.1:{port}" in result.stdout + result.stderr
