"""CURVE authentication and roles on real daemons (issue 10): who can connect, who can call what.

Each daemon runs with ``[zmq] auth = "curve"``, its keys under the test's own
directory. A "remote host" is a second key pair made by the test, talking over
loopback TCP with the server key given by hand, as from another machine.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_helpers import WAIT_S, DaemonEnv, is_alive, wait_until

from nua import curve_keys, runtime
from nua.rpc.client import Client, ConnectionRefusedByDaemonError, DaemonUnreachableError
from nua.rpc.errors import FORBIDDEN, ForbiddenError

NUA = [sys.executable, "-m", "nua.rpc.cli"]
# A client refused during its handshake never connects: this is how long a test waits to see that.
REFUSED_WAIT_S = 1.5


@pytest.fixture
def curve(daemon: DaemonEnv) -> DaemonEnv:
    """A daemon with CURVE on (the default), started."""
    daemon.write_config(zmq={"auth": "curve"}, debug={"allow_fault_injection": True})
    daemon.start()
    return daemon


def record(daemon: DaemonEnv) -> runtime.Record:
    found = runtime.read(runtime.record_path(daemon.pid_file))
    assert found is not None
    return found


def server_key(daemon: DaemonEnv) -> str:
    key = record(daemon).server_key
    assert key is not None
    return key


def owner(daemon: DaemonEnv, timeout: float = WAIT_S) -> Client:
    """A client with the key the daemon made for its own account."""
    pair = curve_keys.read(daemon.client_key)
    return Client(record(daemon).endpoint or daemon.endpoint, timeout, server_key=server_key(daemon), client_key=pair)


def nua(daemon: DaemonEnv, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NUA, "--config", str(daemon.config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=daemon.env(),
        timeout=60,
        check=False,
    )


def add_key(daemon: DaemonEnv, name: str, role: str, public: str) -> None:
    # With "=": a Z85 key may begin with "-", which argparse would take for an option.
    done = daemon.cli("keys", "add", name, "--role", role, f"--public-key={public}")
    assert done.returncode == 0, done.stderr + done.stdout


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the local operator needs no setup ------------------------------------------------------------


def test_first_start_makes_the_keys_private_and_the_owner_an_admin(curve: DaemonEnv) -> None:
    server_file = curve.keys_dir / "server.key_secret"
    assert (mode(curve.keys_dir), mode(server_file)) == (0o700, 0o600)
    assert (mode(curve.client_key.parent), mode(curve.client_key)) == (0o700, 0o600)
    assert server_key(curve) == curve_keys.read(server_file).public
    done = nua(curve, "user", "count")
    assert (done.returncode, done.stdout.strip()) == (0, "0"), done.stderr
    listed = curve.cli("keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    keys = json.loads(listed.stdout)
    assert keys["server_key"] == server_key(curve)
    (mine,) = keys["keys"]
    assert mine["name"] == f"local-{pwd.getpwuid(os.geteuid()).pw_name}"
    assert (mine["role"], mine["public_key"]) == ("admin", curve_keys.read(curve.client_key).public)
    code, status = curve.status()
    assert (code, status["state"]) == (0, "running")


def test_nothing_carries_a_secret_key(curve: DaemonEnv) -> None:
    secrets = [curve_keys.read(curve.keys_dir / "server.key_secret").secret, curve_keys.read(curve.client_key).secret]
    outputs = [
        curve.cli("status", "--json").stdout,
        curve.cli("keys", "list", "--json").stdout,
        nua(curve, "status", "--json").stdout,
        nua(curve, "describe", "key_add").stdout,
        runtime.record_path(curve.pid_file).read_text(encoding="utf-8"),
        curve.log_file.read_text(encoding="utf-8"),
    ]
    for secret in secrets:
        assert all(secret not in text for text in outputs)


# -- unknown keys, roles, removed keys ---------------------------------------------------------------


def test_a_client_with_an_unknown_key_cannot_connect(curve: DaemonEnv) -> None:
    stranger = curve_keys.generate()
    endpoint = record(curve).endpoint or curve.endpoint
    client = Client(endpoint, WAIT_S, server_key=server_key(curve), client_key=stranger)
    with client, pytest.raises(ConnectionRefusedByDaemonError, match="key is not registered"):
        client.call("setting_set", "stranger.was.here", 1)  # said at once, not after WAIT_S
    refused = curve.wait_for_log("client_key_unknown", public_key=stranger.public)
    assert refused["refused"] >= 1
    with owner(curve) as admin, pytest.raises(Exception, match="no setting"):  # nothing reached a method
        admin.call("setting_get", "stranger.was.here")


def test_a_reader_is_denied_user_delete_all_with_the_role_it_needs(curve: DaemonEnv) -> None:
    reader = curve_keys.generate()
    add_key(curve, "reader1", "reader", reader.public)
    with owner(curve) as admin:
        admin.call("user_add", {"username": "alice", "email": "alice@example.com", "password": "s3cret-enough"})
    endpoint = record(curve).endpoint or curve.endpoint
    with Client(endpoint, WAIT_S, server_key=server_key(curve), client_key=reader) as client:
        assert client.call("user_count") == 1
        with pytest.raises(ForbiddenError) as denied:
            client.call("user_delete_all")
        with pytest.raises(ForbiddenError):
            client.call("setting_set", "site.name", "mine")
    assert denied.value.code == FORBIDDEN == -32008
    assert "admin" in denied.value.message
    expected = {"method": "user_delete_all", "role_needed": "admin", "key": "reader1", "role": "reader"}
    assert denied.value.data == expected
    with owner(curve) as admin:
        assert admin.call("user_count") == 1  # nothing was deleted

        def denials() -> list[tuple[str, str, str, str]]:
            items = admin.call("audit_list")["items"]
            return [(r["who"], r["role"], r["method"], r["outcome"]) for r in items if r["outcome"] == "denied"]

        # Recorded by the writer after the refusal went out: waited for, not assumed.
        found = wait_until(lambda: len(denials()) == 2 and denials(), what="the two denials audited")
    assert found == [
        ("reader1", "reader", "setting_set", "denied"),
        ("reader1", "reader", "user_delete_all", "denied"),
    ]


def test_an_operator_sets_settings_but_administers_no_keys(curve: DaemonEnv) -> None:
    operator = curve_keys.generate()
    add_key(curve, "ops", "operator", operator.public)
    endpoint = record(curve).endpoint or curve.endpoint
    with Client(endpoint, WAIT_S, server_key=server_key(curve), client_key=operator) as client:
        assert client.call("setting_set", "site.name", "ours")["value"] == "ours"
        with pytest.raises(ForbiddenError):
            client.call("key_add", "mine", curve_keys.generate().public, "admin")
        with pytest.raises(ForbiddenError):
            client.call("key_list")
        with pytest.raises(ForbiddenError):
            client.call("sys_config")  # the configuration names paths and hosts: admin only
    # The owner (admin) reads it, through nua: the daemon's configuration with each value's source.
    shown = nua(curve, "config")
    assert shown.returncode == 0, shown.stderr
    assert any(
        line.startswith('auth = "curve"') and line.endswith(f"# {curve.config}") for line in shown.stdout.splitlines()
    )


def test_a_removed_key_is_refused_from_its_next_call(curve: DaemonEnv) -> None:
    reader = curve_keys.generate()
    add_key(curve, "temp", "reader", reader.public)
    endpoint = record(curve).endpoint or curve.endpoint
    with Client(endpoint, WAIT_S, server_key=server_key(curve), client_key=reader) as client:
        assert client.call("user_count") == 0
        removed = curve.cli("keys", "remove", "temp")
        assert removed.returncode == 0, removed.stderr
        with pytest.raises(ForbiddenError, match="removed"):
            client.call("user_count")
    again = Client(endpoint, REFUSED_WAIT_S, server_key=server_key(curve), client_key=reader)
    with again, pytest.raises(DaemonUnreachableError):
        again.call("user_count")
    assert curve.cli("keys", "remove", "temp").returncode == 1  # not found


def test_keys_add_without_a_public_key_makes_a_private_pair(curve: DaemonEnv, tmp_path: Path) -> None:
    out = tmp_path / "handed" / "bob.key_secret"
    out.parent.mkdir(mode=0o700)
    done = curve.cli("keys", "add", "bob", "--role", "reader", "--output", str(out))
    assert done.returncode == 0, done.stderr
    pair = curve_keys.read(out)
    assert mode(out) == 0o600
    assert pair.secret not in done.stdout + done.stderr
    endpoint = record(curve).endpoint or curve.endpoint
    with Client(endpoint, WAIT_S, server_key=server_key(curve), client_key=pair) as client:
        assert client.call("user_count") == 0


def test_the_authenticator_stopped_refuses_new_clients(curve: DaemonEnv) -> None:
    with owner(curve) as admin:
        assert "refused" in admin.call("sys_fault_authenticator")
        curve.wait_for_log("zap_handler_stopped")
        assert admin.call("user_count") == 0  # an authenticated connection keeps working
    # Even the admin's own key: with no handler to ask, no one is admitted.
    with owner(curve, timeout=REFUSED_WAIT_S) as late, pytest.raises(DaemonUnreachableError):
        late.call("user_count")
    done = nua(curve, "--timeout", "1", "user", "count")
    assert done.returncode == 3, done.stderr


# -- keys on disk ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["server", "client"])
def test_a_secret_key_open_to_others_stops_the_start(daemon: DaemonEnv, which: str) -> None:
    daemon.write_config(zmq={"auth": "curve"})
    path = daemon.keys_dir / "server.key_secret" if which == "server" else daemon.client_key
    path.parent.mkdir(mode=0o700)
    curve_keys.create(path)
    path.chmod(0o644)
    done = daemon.cli("start")
    assert done.returncode == 6, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert str(path) in line
    assert "0644" in line
    assert daemon.pid() is None


def test_rotate_server_applies_at_the_next_start(curve: DaemonEnv) -> None:
    before = server_key(curve)
    rotated = curve.cli("keys", "rotate-server")
    assert rotated.returncode == 0, rotated.stderr
    new = curve_keys.read(curve.keys_dir / "server.key_secret").public
    assert new != before
    assert new in rotated.stdout
    assert server_key(curve) == before  # still serving with the old one
    assert curve.cli("restart").returncode == 0
    assert server_key(curve) == new
    done = nua(curve, "user", "count")  # the local client follows the record
    assert done.returncode == 0, done.stderr


def test_rotating_the_server_key_by_rpc_is_audited_like_any_change(curve: DaemonEnv) -> None:
    with owner(curve) as admin:
        rotated = admin.call("key_rotate_server")
        assert rotated["public_key"] == curve_keys.read(curve.keys_dir / "server.key_secret").public
        (record_,) = admin.call("audit_list", method="key_rotate_server")["items"]
    assert (record_["role"], record_["outcome"], record_["params"]) == ("admin", "ok", {})
    assert record_["who"].startswith("local-")


def test_nua_keygen_makes_a_private_pair_once(daemon: DaemonEnv, tmp_path: Path) -> None:
    path = tmp_path / "mine" / "client.key_secret"
    done = nua(daemon, "keygen", "--client-key", str(path))
    assert done.returncode == 0, done.stderr
    pair = curve_keys.read(path)
    assert pair.public in done.stdout
    assert pair.secret not in done.stdout + done.stderr
    assert (mode(path.parent), mode(path)) == (0o700, 0o600)
    again = nua(daemon, "keygen", "--client-key", str(path))
    assert again.returncode == 2
    assert curve_keys.read(path) == pair


# -- remote control -------------------------------------------------------------------------------


def test_a_remote_operator_over_tcp_with_its_own_key(daemon: DaemonEnv, tmp_path: Path) -> None:
    daemon.write_config(zmq={"auth": "curve", "endpoint": "tcp://127.0.0.1:0"})
    daemon.start()
    endpoint = record(daemon).endpoint
    assert endpoint is not None
    assert endpoint.startswith("tcp://127.0.0.1:")
    remote_dir = tmp_path / "remote"
    made = nua(daemon, "keygen", "--client-key", str(remote_dir / "client.key_secret"))
    public = made.stdout.split()[0]
    add_key(daemon, "remote-ops", "operator", public)
    server_file = tmp_path / "server.key"
    server_file.write_text(f'curve\n    public-key = "{server_key(daemon)}"\n', encoding="utf-8")
    remote = [
        "--endpoint", endpoint, "--server-key", str(server_file),
        "--client-key", str(remote_dir / "client.key_secret"),
    ]  # fmt: skip
    done = subprocess.run(
        [*NUA, *remote, "setting", "set", "site.name", '"remote"'],
        capture_output=True, text=True, env=daemon.env(NUA_CONFIG="/nonexistent.toml"), timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    denied = subprocess.run(
        [*NUA, *remote, "user", "delete-all", "--yes"],
        capture_output=True, text=True, env=daemon.env(), timeout=60, check=False,
    )  # fmt: skip
    assert denied.returncode == 1
    assert "forbidden (-32008)" in denied.stderr
    assert "admin" in denied.stderr
    pair = curve_keys.read(remote_dir / "client.key_secret")
    # The Python client takes the same: the server key (or its file) and the client's key file.
    with Client(endpoint, WAIT_S, server_key=str(server_file), client_key=remote_dir / "client.key_secret") as client:
        assert client.call("setting_get", "site.name")["value"] == "remote"
    # The wrong server key: the client cannot talk to an impostor, nor the daemon to it.
    wrong = Client(endpoint, REFUSED_WAIT_S, server_key=curve_keys.generate().public, client_key=pair)
    with wrong, pytest.raises(DaemonUnreachableError):
        wrong.call("user_count")


def test_auth_none_serves_a_stock_tinyrpc_client_on_loopback(daemon: DaemonEnv) -> None:
    import zmq  # noqa: PLC0415
    from tinyrpc import RPCClient  # noqa: PLC0415
    from tinyrpc.protocols.jsonrpc import JSONRPCProtocol  # noqa: PLC0415
    from tinyrpc.transports.zmq import ZmqClientTransport  # noqa: PLC0415

    daemon.write_config(zmq={"auth": "none", "endpoint": "tcp://127.0.0.1:0"})
    daemon.start()
    endpoint = record(daemon).endpoint
    assert endpoint is not None
    assert record(daemon).server_key is None
    daemon.wait_for_log("authentication_off")
    context = zmq.Context()
    try:
        client = RPCClient(JSONRPCProtocol(), ZmqClientTransport.create(context, endpoint))
        assert client.call("user_count", [], {}) == 0
        assert client.call("test_add", [1, 2], {}) == 3
    finally:
        context.destroy(linger=0)


def test_auth_none_is_refused_off_loopback(daemon: DaemonEnv) -> None:
    daemon.write_config(zmq={"auth": "none", "endpoint": "tcp://0.0.0.0:0"})
    done = daemon.cli("start")
    assert done.returncode == 6
    assert 'auth = "none"' in done.stderr
    assert daemon.pid() is None


def test_an_ipc_socket_only_in_a_directory_closed_to_others(daemon: DaemonEnv) -> None:
    daemon.run_dir.mkdir(mode=0o700)
    daemon.run_dir.chmod(0o755)
    done = daemon.cli("start")
    assert done.returncode == 6, done.stdout + done.stderr
    assert str(daemon.run_dir) in done.stderr
    assert "0755" in done.stderr


# -- another local account ----------------------------------------------------------------------------

OTHER_ACCOUNT_PROBE = """
import json, socket, sys
found = {}
for path in sys.argv[2:]:
    try:
        open(path, "rb").read(1)
        found[path] = "read"
    except OSError as exc:
        found[path] = type(exc).__name__
probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    probe.connect(sys.argv[1])
    found["connect"] = "connected"
except OSError as exc:
    found["connect"] = type(exc).__name__
print(json.dumps(found))
"""


@pytest.fixture
def other_account() -> Iterator[str]:
    """A local account made for the test (and removed after); root only."""
    if os.geteuid() != 0:
        pytest.skip("making a second local account needs root (useradd)")
    name = f"nuat{os.getpid() % 100000}"
    made = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=False)
    if made.returncode != 0:
        pytest.skip(f"useradd failed ({made.returncode})")
    try:
        yield name
    finally:
        subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


def test_another_account_can_neither_connect_nor_read_anything(other_account: str) -> None:
    # Parents others may traverse (unlike pytest's 0700 tmp_path): only the daemon's own modes protect it.
    root = Path(tempfile.mkdtemp(prefix="nua-acct-"))
    root.chmod(0o755)
    env = DaemonEnv(root)
    try:
        env.write_config(zmq={"auth": "curve"}, db={"url": f"sqlite:///{root}/state/nua.db"})
        env.start()
        files = [root / "state" / "nua.db", env.log_file, env.keys_dir / "server.key_secret", env.client_key]
        assert all(path.exists() for path in files)
        python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
        if python is None:
            pytest.skip("no system python3 the other account can run")
        probe = subprocess.run(
            [python, "-I", "-c", OTHER_ACCOUNT_PROBE, str(env.socket), *map(str, files)],
            user=other_account,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        assert probe.returncode == 0, probe.stderr
        found = json.loads(probe.stdout)
        assert found["connect"] == "PermissionError"
        assert {found[str(path)] for path in files} == {"PermissionError"}
        pid = env.pid()
        assert pid is not None
        assert is_alive(pid)
    finally:
        env.kill_all()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_nua_says_what_to_do_without_a_client_key(curve: DaemonEnv) -> None:
    curve.client_key.rename(curve.client_key.with_name("moved"))
    done = nua(curve, "user", "count")
    assert done.returncode == 6
    assert "nua keygen" in done.stderr
    assert "keys add" in done.stderr


def test_nua_with_an_unregistered_key_says_so(curve: DaemonEnv, tmp_path: Path) -> None:
    made = nua(curve, "keygen", "--client-key", str(tmp_path / "other" / "client.key_secret"))
    assert made.returncode == 0, made.stderr
    done = nua(curve, "--client-key", str(tmp_path / "other" / "client.key_secret"), "user", "count")
    assert done.returncode == 3
    assert "refused the connection" in done.stderr
    assert "keys add" in done.stderr
