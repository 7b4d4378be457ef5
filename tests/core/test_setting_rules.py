"""Settings checked by meaning at load: each bad value is one line naming its source and key."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path, PurePath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nua import settings
from nua.model.password import hash_password
from nua.setting_rules import MAX_IPC_PATH_BYTES, DbUrl, plain_sqlite_url, scrypt_maxmem, scrypt_refusal
from nua.settings import SecuritySettings, SettingsError

# Cheap scrypt costs, so that the probe does not dominate the test run.
FAST_SCRYPT = "[security]\nscrypt_n = 16\nscrypt_r = 1\nscrypt_p = 1\n"


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None, *, deep: bool = True) -> list[str]:
    """The lines of the error that loading ``text`` as the config file gives."""
    config = tmp_path / "nua.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as raised:
        settings.load(config, environ=env or {}, deep=deep)
    return str(raised.value).splitlines()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # ports
        ("[zmq]\nport = 99999\n", "[zmq] port must be from 0 to 65535, got 99999"),
        ("[zmq]\nport = -1\n", "[zmq] port must be from 0 to 65535, got -1"),
        # timeouts and intervals
        ("[rpc]\ncall_timeout_s = -1\n", "[rpc] call_timeout_s must be a number of seconds above 0"),
        ("[server]\nstop_timeout_s = 0\n", "[server] stop_timeout_s must be a number of seconds above 0"),
        ("[supervisor]\nmax_seconds = nan\n", "[supervisor] max_seconds must be a number of seconds above 0"),
        ("[db]\nreconnect_max_s = inf\n", "[db] reconnect_max_s must be a number of seconds above 0 and at most"),
        ("[supervisor]\nshutdown_timeout_s = 1e12\n", "[supervisor] shutdown_timeout_s must be a number of seconds"),
        # counts and sizes
        ("[supervisor]\nmax_restarts = -3\n", "[supervisor] max_restarts must be from 0 to 2147483647, got -3"),
        ("[db]\nmax_batch = 0\n", "[db] max_batch must be from 1 to 2147483647, got 0"),
        ("[zmq]\nsend_hwm = 0\n", "[zmq] send_hwm must be from 1 to"),
        ("[zmq]\nsend_hwm = 4294967296\n", "[zmq] send_hwm must be from 1 to 2147483647, got 4294967296"),
        ("[rpc]\nmax_reply_bytes = 100\n", "[rpc] max_reply_bytes must be from 1024 to"),
        ("[audit]\nkeep_days = -1\n", "[audit] keep_days must be from 0 to 36500, got -1"),
        ("[audit]\nkeep_days = 1000000000\n", "[audit] keep_days must be from 0 to 36500, got 1000000000"),
        # enumerations
        ('[server]\nlog_level = "loud"\n', "[server] log_level must be a log level (debug, info, warning, error)"),
        ('[db]\nsqlite_synchronous = "full"\n', "[db] sqlite_synchronous must be a synchronous mode"),
        # scrypt's cost, by itself
        ("[security]\nscrypt_n = 1000\n", "[security] scrypt_n must be a power of two above 1"),
        ("[security]\nscrypt_n = 1\n", "[security] scrypt_n must be a power of two above 1"),
        # paths, hosts, endpoints, module names
        ('[server]\npid_file = "nua.pid"\n', "[server] pid_file must be an absolute path, got 'nua.pid'"),
        ('[zmq]\naddress = ""\n', "[zmq] address must be a host name or address"),
        ('[zmq]\nendpoint = "tcp://127.0.0.1:99999"\n', "[zmq] endpoint must be tcp://HOST:PORT with PORT from 1"),
        ('[zmq]\nendpoint = "tcp://127.0.0.1"\n', "[zmq] endpoint must be tcp://HOST:PORT"),
        ('[zmq]\nendpoint = "ipc://nua.sock"\n', "[zmq] endpoint must be ipc:// and an absolute path"),
        ('[zmq]\nendpoint = "udp://127.0.0.1:5001"\n', "[zmq] endpoint must be a tcp://HOST:PORT or ipc:///path"),
        ('[rpc]\nplugins = ["my plugin"]\n', "[rpc] plugins must be a list of module names"),
        # database URLs, parsed by SQLAlchemy
        ('[db]\nurl = "not a url"\n', "[db] url must be a database URL SQLAlchemy can parse"),
        ('[db]\nurl = "nosuchdb://host/db"\n', "[db] url must name a database SQLAlchemy knows, not 'nosuchdb'"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_file_and_the_key(tmp_path: Path, text: str, line: str) -> None:
    (only,) = problems(tmp_path, text if text.startswith("[security]") else FAST_SCRYPT + text)
    assert only.startswith(f"{tmp_path / 'nua.toml'}: {line}")


def test_good_values_at_the_edges_load(tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    config.write_text(
        FAST_SCRYPT + "[zmq]\nport = 0\nendpoint = 'tcp://127.0.0.1:0'\n[supervisor]\nmax_restarts = 0\n"
        "[rpc]\nplugins = ['a.b_c', 'd']\ncall_timeout_s = 86400\n",
        encoding="utf-8",
    )
    loaded = settings.load(config, environ={})
    assert (loaded.zmq.port, loaded.supervisor.max_restarts) == (0, 0)
    assert loaded.zmq.bind_endpoint == "tcp://127.0.0.1:0"


def test_an_ipc_path_too_long_for_a_unix_socket_is_refused(tmp_path: Path) -> None:
    at_limit = "/" + "n" * (MAX_IPC_PATH_BYTES - 1)
    config = tmp_path / "nua.toml"
    config.write_text(FAST_SCRYPT + f'[zmq]\nendpoint = "ipc://{at_limit}"\n', encoding="utf-8")
    assert settings.load(config, environ={}).zmq.endpoint == f"ipc://{at_limit}"
    (only,) = problems(tmp_path, FAST_SCRYPT + f'[zmq]\nendpoint = "ipc://{at_limit}x"\n')
    assert f"at most {MAX_IPC_PATH_BYTES} bytes" in only


def test_every_bad_value_is_reported_at_once(tmp_path: Path) -> None:
    lines = problems(tmp_path, FAST_SCRYPT + "[zmq]\nport = 99999\n[db]\nmax_batch = 0\n", {"NUA_RPC_PAGE_SIZE": "0"})
    assert len(lines) == 3
    assert any(line.startswith(f"{tmp_path / 'nua.toml'}: [zmq] port") for line in lines)
    assert any(line.startswith(f"{tmp_path / 'nua.toml'}: [db] max_batch") for line in lines)
    assert any(line.startswith("environment NUA_RPC_PAGE_SIZE: [rpc] page_size") for line in lines)


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "1e999", "-0.5", "0"])
def test_nan_and_infinity_from_the_environment_are_refused(raw: str) -> None:
    with pytest.raises(SettingsError) as raised:
        settings.load(environ={"NUA_RPC_CALL_TIMEOUT_S": raw}, deep=False)
    (only,) = str(raised.value).splitlines()
    assert only.startswith("environment NUA_RPC_CALL_TIMEOUT_S: [rpc] call_timeout_s must be a number of seconds")


def test_a_port_past_65535_from_the_environment_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"^environment NUA_ZMQ_PORT: \[zmq\] port must be from 0 to 65535"):
        settings.load(environ={"NUA_ZMQ_PORT": "99999"}, deep=False)


# -- rules across keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[rpc]\npage_size = 2000\n", "[rpc] page_size (2000) must be at most [rpc] max_page_size (1000, from default"),
        (
            "[rpc]\nmax_message_bytes = 33554432\n",
            "[rpc] max_message_bytes (33554432) must be at most [rpc] hard_max_message_bytes (16777216",
        ),
        (
            "[rpc]\nmax_in_flight = 10\n",
            "[rpc] max_in_flight_per_client (64) must be at most [rpc] max_in_flight (10, from ",
        ),
    ],
)
def test_keys_that_contradict_each_other_are_one_line_naming_both(tmp_path: Path, text: str, line: str) -> None:
    (only,) = problems(tmp_path, FAST_SCRYPT + text)
    assert only.startswith(f"{tmp_path / 'nua.toml'}: {line}")


def test_a_cross_key_error_names_the_source_that_had_the_last_word(tmp_path: Path) -> None:
    (only,) = problems(tmp_path, FAST_SCRYPT + "[rpc]\npage_size = 50\n", {"NUA_RPC_MAX_PAGE_SIZE": "10"})
    assert only == (
        "environment NUA_RPC_MAX_PAGE_SIZE: [rpc] page_size (50) must be at most [rpc] max_page_size"
        " (10, from environment NUA_RPC_MAX_PAGE_SIZE)"
    )


def test_a_key_that_failed_its_own_rule_is_not_compared_again(tmp_path: Path) -> None:
    assert problems(tmp_path, FAST_SCRYPT + "[rpc]\nmax_page_size = 0\n") == [
        f"{tmp_path / 'nua.toml'}: [rpc] max_page_size must be from 1 to 2147483647, got 0"
    ]


# -- scrypt's costs, as hashlib would take them ------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "r", "p"),
    [
        (65536, 1, 1),  # OpenSSL: n must stay below 2 ** (16 * r)
        (2**20, 8, 1),  # the memory scrypt would need is past what hashlib lets nua allow (a C int)
        (16, 1, 2**30),  # OpenSSL: r * p must stay below 2 ** 30
    ],
)
def test_scrypt_costs_hashlib_refuses_fail_at_load_not_at_the_first_user_add(
    tmp_path: Path, n: int, r: int, p: int
) -> None:
    text = f"[security]\nscrypt_n = {n}\nscrypt_r = {r}\nscrypt_p = {p}\n"
    (only,) = problems(tmp_path, text)
    assert only.startswith(
        f"{tmp_path / 'nua.toml'}: [security] scrypt_n = {n}, scrypt_r = {r}, scrypt_p = {p}: hashlib.scrypt refuses"
    )
    # What the check predicts is what the first user_add would have met.
    with pytest.raises(ValueError):  # hashlib's own message varies with the limit met
        hash_password("pw", SecuritySettings(scrypt_n=n, scrypt_r=r, scrypt_p=p))
    # A client that only looks for the endpoint does not run the probe.
    config = tmp_path / "nua.toml"
    assert settings.load(config, environ={}, deep=False).security.scrypt_n == n


def test_scrypt_costs_hashlib_accepts_load(tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    config.write_text("[security]\nscrypt_n = 1024\nscrypt_r = 8\nscrypt_p = 2\n", encoding="utf-8")
    security = settings.load(config, environ={}).security
    assert hash_password("pw", security).startswith("scrypt$1024$8$2$")


# -- database URLs and their drivers -----------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://nua:s3cret@db.example/nua", "postgresql://nua:s3cret@db.example/nua"]
)
def test_a_postgresql_url_without_its_driver_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    # As on a machine without the [pg] extra: `import psycopg` (and psycopg2) fails.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    (only,) = problems(tmp_path, FAST_SCRYPT + f'[db]\nurl = "{url}"\n')
    assert only.startswith(f"{tmp_path / 'nua.toml'}: [db] url must use an installed driver")
    assert "pip install 'nua[pg]'" in only
    assert "s3cret" not in only
    assert url.replace("s3cret", "***") in only


def test_a_bad_url_is_reported_without_its_password(tmp_path: Path) -> None:
    (only,) = problems(tmp_path, FAST_SCRYPT + '[db]\nurl = "postgresql+psycopg://nua:s3cret@db:port/nua"\n')
    assert "[db] url must be a database URL SQLAlchemy can parse" in only
    assert "s3cret" not in only


def test_the_url_rule_is_deep_and_the_client_skips_it(tmp_path: Path) -> None:
    config = tmp_path / "nua.toml"
    config.write_text('[db]\nurl = "nosuchdb://host/db"\n', encoding="utf-8")
    assert settings.load(config, environ={}, deep=False).db.url == "nosuchdb://host/db"


@pytest.mark.parametrize(
    ("n", "r", "p"),
    [
        (16, 1, 1),
        (1024, 8, 2),
        (32768, 1, 1),  # the largest n that r = 1 allows
        (65536, 1, 1),  # past it: n must stay below 2 ** (16 * r)
        (1000, 1, 1),  # not a power of two
        (16, 0, 1),  # r and p at least 1
        (16, 1, 0),
        (2**20, 8, 1),  # maxmem past a C int
        (2, 8192, 1),  # scrypt's memory exactly what nua allows
        (2, 8193, 1),  # one block of r more than it allows
        (16, 1, 2**30),  # r * p past OpenSSL's bound, and maxmem past a C int
    ],
)
def test_scrypt_refusal_is_what_hashlib_answers(n: int, r: int, p: int) -> None:
    """The arithmetic check agrees with hashlib.scrypt at each of its limits (a refusal costs no hash)."""
    refusal = scrypt_refusal(n, r, p)
    try:
        hashlib.scrypt(b"", salt=b"nua", n=n, r=r, p=p, maxmem=scrypt_maxmem(n, r, p), dklen=1)
    except (ValueError, OverflowError) as exc:
        answer = f"refuses ({exc})"
    else:
        answer = "accepts"
    assert (refusal is None) == (answer == "accepts"), f"hashlib {answer}; the check says {refusal}"


PLAIN_PATHS = st.text(alphabet="abcXYZ019_.~/-", max_size=40)


@given(path=PLAIN_PATHS, driver=st.sampled_from(["sqlite", "sqlite+pysqlite"]))
def test_a_plain_sqlite_url_is_what_sqlalchemy_would_say_without_asking_it(path: str, driver: str) -> None:
    # The shortcut that spares a start SQLAlchemy's import must give SQLAlchemy's own answers.
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - the reference the shortcut is held to

    url = f"{driver}:///{path}"
    assert plain_sqlite_url(url)
    parsed = make_url(url)
    assert parsed.get_backend_name() == "sqlite"
    assert parsed.get_dialect().import_dbapi().__name__.startswith("sqlite3")
    assert parsed.render_as_string(hide_password=True) == url
    assert settings.mask_url(url) == url
    # The daemon runs in /: a relative file is refused, with or without the shortcut.
    absolute = path == "" or PurePath(os.path.expanduser(path)).is_absolute()  # noqa: PTH111 - text, not a file
    assert (DbUrl().complaint(url) is None) == absolute


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///:memory:",  # a colon: SQLAlchemy's path
        "sqlite:///a%20b.db",  # decoded by SQLAlchemy, re-encoded when shown
        "sqlite:///x.db?mode=ro",
        "sqlite://user:secret@/x.db",
        "sqlite:///caf\u00e9.db",
        "postgresql://u:p@h/d",
        "sqlite+aiosqlite:///x.db",
        " sqlite:///x.db",
    ],
)
def test_any_other_url_is_left_to_sqlalchemy(url: str) -> None:
    assert not plain_sqlite_url(url)
