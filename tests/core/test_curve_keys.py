"""Key files: created 0600 whatever the umask, never replaced by accident, read only when private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nua import curve_keys, settings


def test_a_key_file_is_0600_from_the_start_even_with_umask_0(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        pair = curve_keys.create(tmp_path / "k.key_secret")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "k.key_secret").stat().st_mode) == 0o600
    assert curve_keys.read(tmp_path / "k.key_secret") == pair
    assert list(tmp_path.iterdir()) == [tmp_path / "k.key_secret"]  # no temporary file left


def test_create_never_replaces_a_key(tmp_path: Path) -> None:
    path = tmp_path / "k.key_secret"
    first = curve_keys.create(path)
    with pytest.raises(FileExistsError):
        curve_keys.create(path)
    assert curve_keys.read(path) == first
    assert curve_keys.ensure(path) == (first, False)
    second = curve_keys.replace(path)
    assert second != first
    assert curve_keys.read(path) == second


def test_zmq_auth_reads_our_files(tmp_path: Path) -> None:
    import zmq.auth  # noqa: PLC0415

    pair = curve_keys.create(tmp_path / "k.key_secret")
    public, secret = zmq.auth.load_certificate(tmp_path / "k.key_secret")
    assert (public.decode(), secret.decode() if secret else None) == (pair.public, pair.secret)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_secret_key_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.key_secret"
    curve_keys.create(path)
    path.chmod(mode)
    with pytest.raises(curve_keys.KeyFileError, match=f"mode {mode:04o}"):
        curve_keys.read(path)
    assert curve_keys.read(path, secret=False).public  # its public half is no secret


def test_a_link_a_mismatch_or_garbage_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.key_secret"
    pair = curve_keys.create(real)
    link = tmp_path / "link.key_secret"
    link.symlink_to(real)
    with pytest.raises(curve_keys.KeyFileError, match="symbolic link"):
        curve_keys.read(link)
    other = curve_keys.generate()
    curve_keys.replace(real, curve_keys.KeyPair(pair.public, other.secret))
    with pytest.raises(curve_keys.KeyFileError, match="does not belong"):
        curve_keys.read(real)
    real.write_bytes(b"\x00" * 100)
    with pytest.raises(curve_keys.KeyFileError, match="not a CURVE key file"):
        curve_keys.read(real)


def test_keys_are_checked_as_z85(tmp_path: Path) -> None:
    pair = curve_keys.generate()
    assert curve_keys.is_key(pair.public)
    assert not curve_keys.is_key(pair.public[:-1])
    assert not curve_keys.is_key(pair.public[:-1] + "~")
    assert not curve_keys.is_key("#" * 40)  # every group past 32 bits
    assert curve_keys.public_key(pair.public) == pair.public
    path = tmp_path / "k.key_secret"
    curve_keys.create(path, pair)
    assert curve_keys.public_key(str(path)) == pair.public
    with pytest.raises(curve_keys.KeyFileError, match="neither a key"):
        curve_keys.public_key(str(tmp_path / "missing"))


@pytest.mark.parametrize(
    ("env", "ok"),
    [
        ({"NUA_ZMQ_AUTH": "none"}, True),
        ({"NUA_ZMQ_AUTH": "none", "NUA_ZMQ_ENDPOINT": "ipc:///run/nua/x.sock"}, True),
        ({"NUA_ZMQ_AUTH": "none", "NUA_ZMQ_ADDRESS": "::1"}, True),
        ({"NUA_ZMQ_AUTH": "none", "NUA_ZMQ_ADDRESS": "0.0.0.0"}, False),  # noqa: S104 - refused, never bound
        ({"NUA_ZMQ_AUTH": "none", "NUA_ZMQ_ENDPOINT": "tcp://*:5001"}, False),
        ({"NUA_ZMQ_AUTH": "none", "NUA_ZMQ_ENDPOINT": "tcp://192.0.2.1:5001"}, False),
        ({"NUA_ZMQ_ADDRESS": "0.0.0.0"}, True),  # noqa: S104 - only loaded
        ({"NUA_ZMQ_AUTH": "plain"}, False),
    ],
)
def test_auth_none_only_where_no_other_host_connects(env: dict[str, str], ok: bool) -> None:
    if ok:
        settings.load(environ=env, deep=False)
    else:
        with pytest.raises(settings.SettingsError, match=r"\[zmq\] auth"):
            settings.load(environ=env, deep=False)
