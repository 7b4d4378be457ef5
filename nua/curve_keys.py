"""CURVE key pairs in files: made 0600 from the start, read only when nobody else can.

A key pair is two Z85 texts of 40 characters (ZeroMQ RFC 32): the public key,
which is shared, and the secret key, which never leaves its file (no reply, log
or status carries it). A file holds one pair in the format of pyzmq's
``zmq.auth`` certificates, so ``zmq.auth.load_certificate`` reads it too.

pyzmq's ``create_certificates`` writes with the process's umask (a secret key
may be born 0644); here a file is created 0600 with ``O_EXCL`` under a temporary
name, completed and fsynced, then linked into place, so that it is never seen
half written nor readable by others, and never replaces a key already there
(:func:`replace` does, on purpose). A secret key file is read only if it is a
regular file of ours that neither its group nor others can read: otherwise the
key must be taken as known to others, and :class:`KeyFileError` says so.

A leaf: the daemon, the gateway, the model's checks and the ``nua`` CLI use it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path
from typing import NamedTuple

Z85_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_VALUE = {char: index for index, char in enumerate(Z85_CHARS)}
# A CURVE key is 32 bytes: 40 characters of Z85.
KEY_CHARS = 40
# A key file is a few hundred bytes; anything much larger is not one.
MAX_FILE_BYTES = 4096
SECRET_MODE = 0o600


class KeyFileError(ValueError):
    """A key file that cannot be used, and why (one line naming the file)."""


class KeyPair(NamedTuple):
    """A CURVE key pair in Z85; ``secret`` is empty for a public key alone."""

    public: str
    secret: str = ""


def is_key(text: object) -> bool:
    """Whether ``text`` is a CURVE key in Z85: 40 characters of its alphabet, each group of 5 within 32 bits."""
    if not isinstance(text, str) or len(text) != KEY_CHARS:
        return False
    for start in range(0, KEY_CHARS, 5):
        value = 0
        for char in text[start : start + 5]:
            digit = _Z85_VALUE.get(char)
            if digit is None:
                return False
            value = value * 85 + digit
        if value >= 2**32:
            return False
    return True


def generate() -> KeyPair:
    """A new key pair from libzmq (its CSPRNG)."""
    import zmq  # noqa: PLC0415 - only what makes keys pays for ZeroMQ here

    public, secret = zmq.curve_keypair()
    return KeyPair(public.decode("ascii"), secret.decode("ascii"))


def _matches(pair: KeyPair) -> bool:
    import zmq  # noqa: PLC0415

    return zmq.curve_public(pair.secret.encode("ascii")).decode("ascii") == pair.public


def _text(pair: KeyPair) -> bytes:
    what = "Secret" if pair.secret else "Public"
    lines = [
        f"#   ****  Generated on {time.strftime('%Y-%m-%d %H:%M:%S')} by nua  ****",
        f"#   ZeroMQ CURVE **{what}** Certificate",
    ]
    if pair.secret:
        lines.append("#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.")
    lines += ["", "metadata", "curve", f'    public-key = "{pair.public}"']
    if pair.secret:
        lines.append(f'    secret-key = "{pair.secret}"')
    return ("\n".join(lines) + "\n").encode("ascii")


def _write_temp(path: Path, pair: KeyPair) -> Path:
    """``pair`` in a new 0600 file beside ``path``, complete and fsynced; its path."""
    temp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, SECRET_MODE)  # created 0600 (or less, by the umask): never more
    try:
        os.write(fd, _text(pair))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return temp


def _fsync_dir(directory: Path) -> None:
    """Make a new name in ``directory`` durable: a key the daemon made must survive a crash of the machine."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create(path: Path, pair: KeyPair | None = None) -> KeyPair:
    """Write ``pair`` (a new one when not given) to ``path``, which must not exist (``FileExistsError``).

    The directory must be the caller's private one (0700): this writes the file only.
    """
    pair = pair or generate()
    temp = _write_temp(path, pair)
    try:
        os.link(temp, path)  # unlike a rename, never replaces a file already there
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return pair


def replace(path: Path, pair: KeyPair | None = None) -> KeyPair:
    """Write ``pair`` (a new one when not given) to ``path``, replacing what is there in one rename."""
    pair = pair or generate()
    temp = _write_temp(path, pair)
    try:
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return pair


def ensure(path: Path) -> tuple[KeyPair, bool]:
    """The pair in ``path``, made first if there is none; and whether it was made now."""
    # Read first: a pair is made (libzmq loaded, its CSPRNG asked) only at a first start.
    with contextlib.suppress(FileNotFoundError):
        return read(path), False
    try:
        return create(path), True
    except FileExistsError:  # made meanwhile by another process
        return read(path), False


def read(path: Path, *, secret: bool = True) -> KeyPair:
    """The pair in ``path`` (its secret too when ``secret``); :class:`KeyFileError` when it cannot be used.

    With ``secret``, the file must be a regular file owned by this account and
    readable by no one else; ``FileNotFoundError`` passes through.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        reason = "it is a symbolic link" if path.is_symlink() else exc.strerror
        msg = f"cannot read the key file {path}: {reason}"
        raise KeyFileError(msg) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            msg = f"the key file {path} is not a regular file"
            raise KeyFileError(msg)
        if secret:
            _check_private(path, info)
        data = os.read(fd, MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        msg = f"the key file {path} is larger than {MAX_FILE_BYTES} bytes: not a key file"
        raise KeyFileError(msg)
    return _parse(path, data, secret=secret)


def _check_private(path: Path, info: os.stat_result) -> None:
    uid = os.geteuid()
    if info.st_uid != uid:
        msg = f"the secret key file {path} belongs to uid {info.st_uid}, not to us (uid {uid}): refusing it"
        raise KeyFileError(msg)
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        msg = (
            f"the secret key file {path} is open to its group or others (mode {mode:04o}): the key must be taken as"
            f" known; remove the file to have a new key made (or, if no one else can have read it, chmod 600 it)"
        )
        raise KeyFileError(msg)


def _parse(path: Path, data: bytes, *, secret: bool) -> KeyPair:
    found: dict[str, str] = {}
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    for line in text.splitlines():
        name, equals, value = line.strip().partition("=")
        name = name.strip()
        if equals and name in ("public-key", "secret-key"):
            found[name] = value.strip().strip("\"'")
    public, secret_key = found.get("public-key", ""), found.get("secret-key", "")
    if not is_key(public) or (secret and not is_key(secret_key)):
        wanted = "a public-key and a secret-key" if secret else "a public-key"
        msg = f"{path} is not a CURVE key file: it must hold {wanted} of 40 Z85 characters"
        raise KeyFileError(msg)
    pair = KeyPair(public, secret_key if secret else "")
    if secret and not _matches(pair):
        msg = f"the key file {path} holds a secret key that does not belong to its public key"
        raise KeyFileError(msg)
    return pair


def public_key(key_or_file: str) -> str:
    """A public key given as itself (40 Z85 characters) or as a key file (public or secret) holding one."""
    if is_key(key_or_file):
        return key_or_file
    path = Path(key_or_file).expanduser()
    try:
        return read(path, secret=False).public
    except FileNotFoundError:
        msg = f"{key_or_file[:60]!r} is neither a key (40 Z85 characters) nor a key file"
        raise KeyFileError(msg) from None


__all__ = [
    "KEY_CHARS",
    "KeyFileError",
    "KeyPair",
    "create",
    "ensure",
    "generate",
    "is_key",
    "public_key",
    "read",
    "replace",
]
